package main

import (
	"context"
	"testing"
	"time"
)

// TestQuickstart runs the demo end to end, so the README's main command
// keeps working.
func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
}
