// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title TestBatchSender
/// @notice Test utility: pays several recipients in ONE transaction, like an exchange's batch
///         withdrawal, so tests can check that each Transfer log is its own payment.
contract TestBatchSender {
    using SafeERC20 for IERC20;

    /// @dev The recipients and amounts lists differ in length.
    error TestBatchSenderLengthMismatch(uint256 recipients, uint256 amounts);

    /// @dev Emitted once per batch, after every transfer.
    event BatchSent(address indexed token, address indexed sender, uint256 count);

    /// @notice Pull `amounts[i]` of `token` from the caller to `recipients[i]`, for every i.
    /// @dev Requires the caller to have approved this contract for the sum. Emits {BatchSent}.
    function send(IERC20 token, address[] calldata recipients, uint256[] calldata amounts) external {
        if (recipients.length != amounts.length) {
            revert TestBatchSenderLengthMismatch(recipients.length, amounts.length);
        }
        for (uint256 i = 0; i < recipients.length; ++i) {
            token.safeTransferFrom(msg.sender, recipients[i], amounts[i]);
        }
        emit BatchSent(address(token), msg.sender, recipients.length);
    }
}
