// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title TestUSDC
 * @notice A USD Coin stand-in for local chains and testnets: 6 decimals, EIP-2612 `permit`,
 * supply minted by the owner.
 * @dev The EIP-712 domain is `("Test USD Coin", "1", chainId, address(this))`. Mainnet USDC uses
 * version "2"; clients should read the domain from `eip712Domain()` (ERC-5267) rather than
 * hard-code it. Not for production: the owner can mint without limit.
 */
contract TestUSDC is ERC20, ERC20Permit, Ownable {
    /// @dev The deployer becomes the owner, the only account allowed to mint.
    constructor() ERC20("Test USD Coin", "USDC") ERC20Permit("Test USD Coin") Ownable(msg.sender) {}

    /**
     * @notice Creates `amount` tokens and assigns them to `to`, increasing the total supply.
     * @dev Requirements:
     * - the caller is the owner (else {OwnableUnauthorizedAccount});
     * - `to` is not the zero address (else {ERC20InvalidReceiver}).
     *
     * Emits a {Transfer} event with `from` set to the zero address.
     * @param to Account receiving the new tokens.
     * @param amount Amount to create, in base units (10^-6 USDC).
     */
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /**
     * @notice Number of decimals of the token's display unit: 6, as on mainnet USDC.
     * @return The number of decimals.
     */
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}
