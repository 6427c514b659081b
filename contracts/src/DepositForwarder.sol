// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/**
 * @title IDepositFactory
 * @notice What a {DepositForwarder} reads from the factory that deployed it.
 * @dev Implemented by {DepositFactory}. Declared here, not beside the factory, so that the
 * forwarder does not import the factory that itself imports the forwarder.
 */
interface IDepositFactory {
    /// @notice Account every forwarder of this factory flushes tokens to.
    function treasury() external view returns (address);
}

/**
 * @title DepositForwarder
 * @notice The code behind one payment intent's deposit address. Payers send ERC-20 tokens to the
 * address with a plain transfer, before or after any code exists there; the factory then calls
 * {flush} to move the whole balance to its treasury.
 * @dev Deployed once as an implementation, then as EIP-1167 clones (OpenZeppelin
 * `Clones.cloneDeterministic`) at addresses derived from the factory, a per-intent salt and this
 * implementation's address; no private key exists for any of them. A clone is initialised with
 * its factory in the transaction that deploys it, so nobody can initialise it first. The
 * implementation itself is initialised in its constructor with its deployer, so it can never be
 * initialised by anyone else.
 *
 * Only ERC-20 tokens can leave a forwarder: it has no `receive` function, so ether sent to a
 * deployed forwarder reverts, and ether sent to the address before deployment stays there.
 */
contract DepositForwarder {
    using SafeERC20 for IERC20;

    /// @notice The factory allowed to {flush} this forwarder and whose treasury receives the tokens;
    /// zero only in a clone that is not initialised yet.
    address public factory;

    /// @dev Emitted once per forwarder, when `factory` becomes its factory.
    event ForwarderInitialized(address indexed factory);

    /// @dev Emitted by every {flush}, also when `amount` is zero.
    event Flushed(address indexed token, address indexed treasury, uint256 amount);

    /// @dev {initialize} was called on a forwarder whose factory is already `factory`.
    error ForwarderAlreadyInitialized(address factory);

    /// @dev {initialize} was called with the zero address as the factory.
    error ForwarderInvalidFactory(address factory);

    /// @dev {flush} was called by `caller`, which is not the forwarder's `factory`.
    error ForwarderUnauthorizedCaller(address caller, address factory);

    /// @dev {flush} was called with a `token` that has no code, whose balance cannot be read.
    error ForwarderTokenNotContract(address token);

    /// @dev The implementation is initialised with its deployer (the factory) right away, so that
    /// nobody else can initialise it. Clones do not run this constructor.
    constructor() {
        _initialize(msg.sender);
    }

    /**
     * @notice Sets the factory of a freshly deployed clone. Callable once.
     * @dev The factory calls this in the transaction that deploys the clone.
     *
     * Requirements:
     * - the forwarder has no factory yet (else {ForwarderAlreadyInitialized});
     * - `factory_` is not the zero address (else {ForwarderInvalidFactory}).
     *
     * Emits a {ForwarderInitialized} event.
     * @param factory_ The factory that may flush this forwarder and whose treasury receives tokens.
     */
    function initialize(address factory_) external {
        _initialize(factory_);
    }

    /**
     * @notice Transfers this forwarder's whole balance of `token` to the factory's treasury.
     * @dev Uses SafeERC20, so tokens that return nothing from `transfer` (USDT) work, and a token
     * that returns `false` reverts. A zero balance transfers nothing, as some tokens revert on
     * zero-value transfers, and still succeeds.
     *
     * Requirements:
     * - the caller is the forwarder's factory (else {ForwarderUnauthorizedCaller});
     * - `token` has code (else {ForwarderTokenNotContract});
     * - the factory's treasury accepts the transfer (else the token's own revert).
     *
     * Emits a {Flushed} event.
     * @param token ERC-20 token to move.
     * @return amount Amount moved to the treasury, in the token's base units.
     */
    function flush(address token) external returns (uint256 amount) {
        address factory_ = factory;
        if (msg.sender != factory_) {
            revert ForwarderUnauthorizedCaller(msg.sender, factory_);
        }
        // A high-level call to an address without code would revert without data; say why.
        if (token.code.length == 0) {
            revert ForwarderTokenNotContract(token);
        }
        address treasury = IDepositFactory(factory_).treasury();
        amount = IERC20(token).balanceOf(address(this));
        if (amount > 0) {
            IERC20(token).safeTransfer(treasury, amount);
        }
        emit Flushed(token, treasury, amount);
    }

    function _initialize(address factory_) private {
        if (factory != address(0)) {
            revert ForwarderAlreadyInitialized(factory);
        }
        if (factory_ == address(0)) {
            revert ForwarderInvalidFactory(factory_);
        }
        factory = factory_;
        emit ForwarderInitialized(factory_);
    }
}
