// Package blockxfer holds the block-transfer protocol engines that the
// blobs package runs beside bitswap: the holdings protocol (does a replica
// keep a file, whole?) and the liar detector (peers that send blocks
// nobody asked for are banned). Every stream frames its messages with
// internal/frame.
package blockxfer
