// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {DepositForwarder, IDepositFactory} from "./DepositForwarder.sol";

/**
 * @title DepositFactory
 * @notice Gives every payment intent its own deposit address and sweeps what arrives there to
 * the treasury. A deposit address is the CREATE2 address of an EIP-1167 clone of one
 * {DepositForwarder} implementation, deployed by this factory with a per-intent salt: it is known
 * (see {predictAddress}) before anything is deployed, and no private key exists for it.
 * @dev A sweep deploys the clone if it is not there yet and flushes one token to the treasury in
 * the same transaction; later sweeps of the same salt flush the existing clone. Only the owner
 * (the relayer, which pays the gas) and the sweepers it allows may sweep; only the owner may
 * change the treasury or the sweepers. The treasury is read at every sweep, so changing it
 * redirects all later sweeps, including those of clones deployed earlier.
 *
 * Sweeping an address that holds none of the token succeeds, transfers nothing and emits {Swept}
 * with amount 0 (deploying the clone if needed): sweeps are then idempotent, a retried sweep after
 * a successful one does not fail, and one empty intent does not revert a whole {sweepBatch}.
 *
 * Ownership moves in two steps (accept by the new owner) and cannot be renounced, since without
 * an owner the treasury could never change again.
 */
contract DepositFactory is Ownable2Step, IDepositFactory {
    /// @notice Most sweeps one {sweepBatch} may carry, so a batch always fits in a block.
    uint256 public constant SWEEP_BATCH_SIZE_MAX = 100;

    /// @notice The {DepositForwarder} every deposit address is a clone of; deployed by this factory.
    address public immutable implementation;

    /// @inheritdoc IDepositFactory
    address public treasury;

    /// @notice Whether `account` may sweep besides the owner.
    mapping(address account => bool) public isSweeper;

    /// @dev Emitted when the treasury changes, including when the constructor sets the first one.
    event TreasuryChanged(address indexed previousTreasury, address indexed newTreasury);

    /// @dev Emitted when the owner allows (`allowed` true) or disallows `account` to sweep.
    event SweeperSet(address indexed account, bool allowed);

    /// @dev Emitted when the clone for `salt` is deployed at `forwarder`.
    event ForwarderDeployed(bytes32 indexed salt, address indexed forwarder);

    /// @dev Emitted by every sweep, also when `amount` is zero.
    event Swept(bytes32 indexed salt, address indexed forwarder, address indexed token, uint256 amount, address treasury);

    /// @dev `treasury` cannot receive sweeps: it is the zero address or this factory.
    error DepositFactoryInvalidTreasury(address treasury);

    /// @dev `account` cannot be a sweeper: it is the zero address.
    error DepositFactoryInvalidSweeper(address account);

    /// @dev `account` is neither the owner nor an allowed sweeper.
    error DepositFactoryUnauthorizedSweeper(address account);

    /// @dev A {sweepBatch} has `saltsLength` salts but `tokensLength` tokens.
    error DepositFactoryBatchLengthMismatch(uint256 saltsLength, uint256 tokensLength);

    /// @dev A {sweepBatch} has `length` sweeps, not between 1 and `lengthMax`.
    error DepositFactoryBatchSizeInvalid(uint256 length, uint256 lengthMax);

    /// @dev {renounceOwnership} was called; it is disabled.
    error DepositFactoryRenounceOwnershipDisabled();

    modifier onlySweeper() {
        if (msg.sender != owner() && !isSweeper[msg.sender]) {
            revert DepositFactoryUnauthorizedSweeper(msg.sender);
        }
        _;
    }

    /**
     * @dev Deploys the {DepositForwarder} implementation, which is initialised with this factory.
     *
     * Requirements:
     * - `treasury_` is neither the zero address nor this factory (else {DepositFactoryInvalidTreasury});
     * - `owner_` is not the zero address (else {OwnableInvalidOwner}).
     *
     * Emits {OwnershipTransferred} and {TreasuryChanged} events.
     * @param treasury_ Account that receives every sweep.
     * @param owner_ Account that may sweep and configure the factory: the relayer.
     */
    constructor(address treasury_, address owner_) Ownable(owner_) {
        _setTreasury(treasury_);
        implementation = address(new DepositForwarder());
    }

    /**
     * @notice The deposit address for `salt`, whether or not its clone is deployed yet.
     * @dev CREATE2 address of an EIP-1167 clone of {implementation} deployed by this factory.
     * @param salt Per-intent salt (Settle uses keccak256 of a domain-separated intent id).
     * @return The deposit address.
     */
    function predictAddress(bytes32 salt) external view returns (address) {
        return Clones.predictDeterministicAddress(implementation, salt);
    }

    /**
     * @notice Moves the whole balance of `token` at the deposit address for `salt` to the treasury,
     * deploying the address's forwarder first if it has none.
     * @dev An empty balance is not an error: the sweep moves nothing and reports 0.
     *
     * Requirements:
     * - the caller is the owner or an allowed sweeper (else {DepositFactoryUnauthorizedSweeper});
     * - `token` has code (else {DepositForwarder-ForwarderTokenNotContract});
     * - the token transfer succeeds (else the token's own revert, or {SafeERC20-SafeERC20FailedOperation}).
     *
     * Emits {ForwarderDeployed} (first sweep of `salt` only), {DepositForwarder-Flushed} and {Swept}.
     * @param salt Per-intent salt of the deposit address.
     * @param token ERC-20 token to sweep.
     * @return amount Amount moved to the treasury, in the token's base units.
     */
    function sweep(bytes32 salt, address token) external onlySweeper returns (uint256 amount) {
        return _sweep(salt, token);
    }

    /**
     * @notice Sweeps `tokens[i]` from the deposit address for `salts[i]`, for every `i`, in one
     * transaction. A salt may appear several times, with different tokens.
     * @dev Each item behaves as {sweep}; if one reverts, the whole batch reverts.
     *
     * Requirements:
     * - the caller is the owner or an allowed sweeper (else {DepositFactoryUnauthorizedSweeper});
     * - `salts` and `tokens` have the same length (else {DepositFactoryBatchLengthMismatch});
     * - that length is between 1 and {SWEEP_BATCH_SIZE_MAX} (else {DepositFactoryBatchSizeInvalid});
     * - every item meets the requirements of {sweep}.
     *
     * Emits, per item, the events of {sweep}.
     * @param salts Per-intent salts of the deposit addresses.
     * @param tokens ERC-20 token to sweep from each deposit address.
     * @return amounts Amount moved to the treasury per item, in the token's base units.
     */
    function sweepBatch(
        bytes32[] calldata salts,
        address[] calldata tokens
    ) external onlySweeper returns (uint256[] memory amounts) {
        uint256 length = salts.length;
        if (length != tokens.length) {
            revert DepositFactoryBatchLengthMismatch(length, tokens.length);
        }
        if (length == 0 || length > SWEEP_BATCH_SIZE_MAX) {
            revert DepositFactoryBatchSizeInvalid(length, SWEEP_BATCH_SIZE_MAX);
        }
        amounts = new uint256[](length);
        for (uint256 index = 0; index < length; ++index) {
            amounts[index] = _sweep(salts[index], tokens[index]);
        }
    }

    /**
     * @notice Sends all later sweeps, from every deposit address, to `newTreasury`.
     * @dev Requirements:
     * - the caller is the owner (else {OwnableUnauthorizedAccount});
     * - `newTreasury` is neither the zero address nor this factory (else {DepositFactoryInvalidTreasury}).
     *
     * Emits a {TreasuryChanged} event.
     * @param newTreasury Account that receives the sweeps from now on.
     */
    function setTreasury(address newTreasury) external onlyOwner {
        _setTreasury(newTreasury);
    }

    /**
     * @notice Allows or disallows `account` to sweep. The owner may always sweep.
     * @dev Requirements:
     * - the caller is the owner (else {OwnableUnauthorizedAccount});
     * - `account` is not the zero address (else {DepositFactoryInvalidSweeper}).
     *
     * Emits a {SweeperSet} event.
     * @param account Account to allow or disallow.
     * @param allowed Whether `account` may sweep.
     */
    function setSweeper(address account, bool allowed) external onlyOwner {
        if (account == address(0)) {
            revert DepositFactoryInvalidSweeper(account);
        }
        isSweeper[account] = allowed;
        emit SweeperSet(account, allowed);
    }

    /**
     * @notice Disabled: always reverts with {DepositFactoryRenounceOwnershipDisabled}.
     * @dev Without an owner the treasury could never change; hand over with {transferOwnership}.
     */
    function renounceOwnership() public view override onlyOwner {
        revert DepositFactoryRenounceOwnershipDisabled();
    }

    function _sweep(bytes32 salt, address token) private returns (uint256 amount) {
        address forwarder = Clones.predictDeterministicAddress(implementation, salt);
        if (forwarder.code.length == 0) {
            // Deploy and initialise in one transaction, so nobody can initialise the clone first.
            Clones.cloneDeterministic(implementation, salt);
            DepositForwarder(forwarder).initialize(address(this));
            emit ForwarderDeployed(salt, forwarder);
        }
        amount = DepositForwarder(forwarder).flush(token);
        emit Swept(salt, forwarder, token, amount, treasury);
    }

    function _setTreasury(address newTreasury) private {
        if (newTreasury == address(0) || newTreasury == address(this)) {
            revert DepositFactoryInvalidTreasury(newTreasury);
        }
        emit TreasuryChanged(treasury, newTreasury);
        treasury = newTreasury;
    }
}
