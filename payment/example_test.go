package payment_test

import (
	"context"
	"fmt"
	"log"
	"math/big"
	"time"

	"github.com/dpaas/dpaas/payment"
)

// A payer opens a channel on a development chain, pays three times off
// the chain, and the payee redeems only the latest voucher.
func Example() {
	ctx := context.Background()
	dev, err := payment.NewDevChain(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	payer, err := payment.Open(ctx, payment.Config{Dev: dev})
	if err != nil {
		log.Fatal(err)
	}
	defer payer.Close()
	payee, err := payment.Open(ctx, payment.Config{Dev: dev})
	if err != nil {
		log.Fatal(err)
	}
	defer payee.Close()
	if err := dev.Fund(ctx, payer.Account(), big.NewInt(1000)); err != nil {
		log.Fatal(err)
	}
	if err := dev.Fund(ctx, payee.Account(), nil); err != nil {
		log.Fatal(err)
	}

	ch, err := payer.OpenChannel(ctx, payee.Account(), big.NewInt(100), time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	for _, price := range []int64{10, 20, 5} {
		v, err := ch.Pay(big.NewInt(price))
		if err != nil {
			log.Fatal(err)
		}
		wire, _ := v.MarshalBinary() // what travels to the payee
		got, err := payment.ParseVoucher(wire)
		if err != nil {
			log.Fatal(err)
		}
		if err := payee.Accept(ctx, got); err != nil {
			log.Fatal(err)
		}
		fmt.Println("voucher for", got.Amount)
	}
	if _, err := payee.Redeem(ctx, ch.ID()); err != nil {
		log.Fatal(err)
	}
	earned, _ := payee.Balance(ctx, payee.Account())
	left, _ := payer.Balance(ctx, payer.Account())
	fmt.Println("payee earned", earned, "payer holds", left, "outside the channel")
	// Output:
	// voucher for 10
	// voucher for 30
	// voucher for 35
	// payee earned 35 payer holds 900 outside the channel
}
