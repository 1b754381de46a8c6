// Package payout computes a DApp fund's payout table for one epoch: a pure
// function of what the network verified about each instance (code
// integrity, availability, diversity group) and of the traffic each
// served, as backed by payment vouchers. Every committee member computes
// it from the same replicated inputs and gets the same table, byte for
// byte; anyone can recompute it and check it against the hash the Fund
// contract was given (Hash).
//
// # The rule
//
// Given the epoch budget B and a minimum availability m (parts per
// million):
//
//  1. An instance is eligible when it is verified (its executable matches
//     an approved release), its availability a is at least m and above
//     zero, and it served traffic s > 0. Others earn nothing.
//  2. Eligible instances are grouped by diversity group (an instance with
//     an empty Group is a group of its own, keyed by its account). In a
//     group, instances of one account count as one member: their traffic
//     adds up and their availability is the best of them.
//  3. Each group g has the weight w_g = A_g × S_g, where A_g is the best
//     availability among its members (ppm) and S_g the traffic its
//     members served. That is A_g times the group's share S_g/S of all
//     the served traffic S, scaled by the common factor S: a group is paid
//     as one instance that served all the group's traffic, however many
//     machines it runs, so duplicate infrastructure earns nothing more.
//  4. The budget is split among groups in proportion to w_g, and each
//     group's amount among its members in proportion to their traffic.
//     Both splits are exact integer arithmetic: each part is
//     floor(total × weight / Σ weights), and the units left over by the
//     floors (fewer than the number of parts) go one each to the parts
//     with the largest remainders; ties go to groups of one account
//     before named groups, then to the smaller account or name
//     (bytewise), and within a group to the smaller account. So the table
//     pays exactly B when any instance is eligible, and nothing otherwise.
//  5. An account paid in several groups gets the sum. The table lists
//     each account paid a positive amount once, sorted by account
//     (bytewise ascending); accounts earning nothing are left out.
//
// The result does not depend on the order of the inputs.
//
// # Usage
//
//	rows, err := payout.Compute(instances, payout.Params{
//		Budget: epochBudget, MinAvailability: payout.DefaultMinAvailability})
//	h, err := payout.Hash(rows) // what the committee signs (with the epoch)
//
// # Caller duties
//
//  1. Feed every member the same inputs for an epoch: availability and
//     groups from the replicated attestations, Served from vouchers the
//     instance was paid (accepted or redeemed), never from its own report.
//  2. Keep Budget within the Fund contract's epoch budget and balance, or
//     the contract refuses the table.
//  3. Keep the table small enough for one transaction: see the payment
//     package's limits on recipients per payout.
package payout
