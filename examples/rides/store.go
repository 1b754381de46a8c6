package main

import (
	"github.com/dpaas/dpaas/dapp"
	"github.com/dpaas/dpaas/examples/rides/server"
	"github.com/dpaas/dpaas/store"
)

// storeConfig installs the rides validators, which must be the same on
// every instance.
func storeConfig(app dapp.Manifest) store.Config {
	return store.Config{Validators: server.Validators(server.DomainOf(app))}
}
