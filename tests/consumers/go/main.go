// A set/get round trip through the Go binding, from a module of its own.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"

	backlite "github.com/backlite/backlite/bindings/go"
)

func main() {
	path := "app.db"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	cache, err := backlite.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	if err := cache.Set([]byte("greeting"), []byte("hello from Go"), backlite.ExpireNever); err != nil {
		log.Fatal(err)
	}
	value, err := cache.Get([]byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	if !bytes.Equal(value, []byte("hello from Go")) {
		log.Fatalf("app: got back %q", value)
	}
	fmt.Printf("%s\n", value)
}
