// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";

/**
 * @title TestUSDT
 * @notice A Tether USD stand-in for local chains and testnets that reproduces mainnet USDT's
 * best-known quirk: `transfer`, `transferFrom` and `approve` return nothing instead of a `bool`.
 * @dev Deliberately not ERC-20 compliant in its return values, which is why it does not inherit
 * OpenZeppelin's ERC20: a caller decoding a `bool` (a plain `IERC20` call in Solidity, or an ABI
 * that declares one) fails against it, as it would against mainnet USDT. Callers must treat empty
 * return data as success (SafeERC20 does). Failures revert with the ERC-6093 custom errors, so they
 * share selectors with OpenZeppelin tokens such as {TestUSDC}.
 *
 * Like mainnet USDT, an allowance of `type(uint256).max` is never decreased. Unlike mainnet USDT,
 * there is no transfer fee, no blacklist, no pause, and `approve` does not require the current
 * allowance to be zero before setting another non-zero one.
 */
contract TestUSDT is Ownable, IERC20Errors {
    /// @notice Name of the token.
    string public constant name = "Test Tether USD";

    /// @notice Symbol of the token.
    string public constant symbol = "USDT";

    /// @notice Number of decimals of the token's display unit: 6, as on mainnet USDT.
    uint8 public constant decimals = 6;

    /// @notice Amount of tokens in existence, in base units.
    uint256 public totalSupply;

    /// @notice Balance of `account`, in base units.
    mapping(address account => uint256) public balanceOf;

    /// @notice Remaining amount `spender` may move out of `holder`'s balance with {transferFrom}.
    mapping(address holder => mapping(address spender => uint256)) public allowance;

    /// @dev Emitted when `value` tokens move from `from` to `to`; `from` is zero for a mint.
    event Transfer(address indexed from, address indexed to, uint256 value);

    /// @dev Emitted when `owner` sets `spender`'s allowance to `value` with {approve}.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @dev The deployer becomes the owner, the only account allowed to mint.
    constructor() Ownable(msg.sender) {}

    /**
     * @notice Moves `value` tokens from the caller's balance to `to`. Returns nothing.
     * @dev Requirements:
     * - `to` is not the zero address (else {ERC20InvalidReceiver});
     * - the caller holds at least `value` (else {ERC20InsufficientBalance}).
     *
     * Emits a {Transfer} event.
     * @param to Account receiving the tokens.
     * @param value Amount to move, in base units.
     */
    function transfer(address to, uint256 value) external {
        _transfer(msg.sender, to, value);
    }

    /**
     * @notice Moves `value` tokens from `from` to `to` using the caller's allowance. Returns nothing.
     * @dev Requirements:
     * - the caller's allowance for `from` is at least `value` (else {ERC20InsufficientAllowance});
     * - `to` is not the zero address (else {ERC20InvalidReceiver});
     * - `from` holds at least `value` (else {ERC20InsufficientBalance}).
     *
     * Decreases the allowance unless it is `type(uint256).max`. Emits a {Transfer} event and, as
     * mainnet USDT, no {Approval} event for the decrease.
     * @param from Account the tokens are taken from.
     * @param to Account receiving the tokens.
     * @param value Amount to move, in base units.
     */
    function transferFrom(address from, address to, uint256 value) external {
        _spendAllowance(from, msg.sender, value);
        _transfer(from, to, value);
    }

    /**
     * @notice Sets `spender`'s allowance over the caller's tokens to `value`. Returns nothing.
     * @dev Requirements:
     * - `spender` is not the zero address (else {ERC20InvalidSpender}).
     *
     * Emits an {Approval} event.
     * @param spender Account allowed to move the caller's tokens with {transferFrom}.
     * @param value New allowance, in base units; `type(uint256).max` means unlimited.
     */
    function approve(address spender, uint256 value) external {
        if (spender == address(0)) {
            revert ERC20InvalidSpender(address(0));
        }
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
    }

    /**
     * @notice Creates `amount` tokens and assigns them to `to`, increasing the total supply.
     * @dev Requirements:
     * - the caller is the owner (else {OwnableUnauthorizedAccount});
     * - `to` is not the zero address (else {ERC20InvalidReceiver});
     * - the total supply does not overflow (else a checked-arithmetic panic).
     *
     * Emits a {Transfer} event with `from` set to the zero address.
     * @param to Account receiving the new tokens.
     * @param amount Amount to create, in base units (10^-6 USDT).
     */
    function mint(address to, uint256 amount) external onlyOwner {
        if (to == address(0)) {
            revert ERC20InvalidReceiver(address(0));
        }
        totalSupply += amount;
        // Cannot overflow: every balance is at most the total supply, checked just above.
        unchecked {
            balanceOf[to] += amount;
        }
        emit Transfer(address(0), to, amount);
    }

    function _transfer(address from, address to, uint256 value) private {
        if (to == address(0)) {
            revert ERC20InvalidReceiver(address(0));
        }
        uint256 fromBalance = balanceOf[from];
        if (fromBalance < value) {
            revert ERC20InsufficientBalance(from, fromBalance, value);
        }
        // Cannot overflow or underflow: checked above, and the sum of balances is the total supply.
        unchecked {
            balanceOf[from] = fromBalance - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }

    function _spendAllowance(address holder, address spender, uint256 value) private {
        uint256 currentAllowance = allowance[holder][spender];
        if (currentAllowance == type(uint256).max) {
            return;
        }
        if (currentAllowance < value) {
            revert ERC20InsufficientAllowance(spender, currentAllowance, value);
        }
        unchecked {
            allowance[holder][spender] = currentAllowance - value;
        }
    }
}
