package store_test

import (
	"context"
	"fmt"

	"github.com/dpaas/dpaas/store"
)

func Example() {
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{}) // in memory, local only
	if err != nil {
		panic(err)
	}
	defer s.Close()

	rides := s.Collection("rides")
	type ride struct {
		City string `json:"city"`
		Fare int    `json:"fare"`
	}
	_ = rides.Index(ctx, "city")
	_ = rides.Put(ctx, "r1", ride{City: "Oslo", Fare: 12})
	_ = rides.Put(ctx, "r2", ride{City: "Oslo", Fare: 30})
	_ = rides.Put(ctx, "r3", ride{City: "Rome", Fare: 8})
	_ = rides.Update(ctx, "r1", store.Inc("fare", 3), store.Add("tags", "night"), store.Append("log", "booked"))
	_ = rides.Delete(ctx, "r3") // burn

	for doc, err := range rides.Find(ctx, store.Where("city", "==", "Oslo"), store.OrderBy("-fare")) {
		if err != nil {
			panic(err)
		}
		fmt.Println(doc.ID, string(doc.Data))
	}
	groups, _ := rides.Aggregate(ctx, "city", "fare")
	for _, g := range groups {
		fmt.Println(g.Key, g.Count, g.Sum)
	}
	// Output:
	// r2 {"city":"Oslo","fare":30}
	// r1 {"city":"Oslo","fare":15,"log":["booked"],"tags":["night"]}
	// Oslo 2 45
}
