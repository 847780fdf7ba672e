package backlite_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

func ExampleOpen() {
	dir, err := os.MkdirTemp("", "backlite-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cache, err := backlite.Open(filepath.Join(dir, "cache.db"),
		backlite.WithMaxSize(64<<20), // 64 MiB of values
		backlite.WithEvictionPolicy(backlite.LeastRecentlyUsed))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	if err := cache.Set([]byte("greeting"), []byte("hello"), time.Minute); err != nil {
		log.Fatal(err)
	}
	greeting, err := cache.Get([]byte("greeting"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("greeting: %s\n", greeting)

	if _, err := cache.Get([]byte("absent")); errors.Is(err, backlite.ErrNotFound) {
		fmt.Println("absent: not found")
	}

	// Memoisation: computed once across goroutines and processes, then read from the file.
	answer, err := cache.CachedContext(context.Background(), []byte("answer"),
		func(ctx context.Context) ([]byte, error) {
			return []byte("42"), nil // an expensive computation
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("answer: %s\n", answer)
	// Output:
	// greeting: hello
	// absent: not found
	// answer: 42
}

func ExampleStorage_Cached() {
	cache, err := backlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	for i := 0; i < 3; i++ {
		v, err := cache.Cached([]byte("k"), func() ([]byte, error) {
			fmt.Println("computing")
			return []byte("value"), nil
		}, backlite.WithExpiration(time.Hour))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(v))
	}
	// Output:
	// computing
	// value
	// value
	// value
}

func ExampleStorage_Keys() {
	cache, err := backlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	err = cache.SetMany([]backlite.Entry{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("b"), Value: []byte("2"), Expiration: backlite.ExpireNever},
	})
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	if err := cache.Keys(func(key []byte) bool { n++; return true }); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "keys")
	// Output: 2 keys
}

func ExampleStorage_OpenReader() {
	cache, err := backlite.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	if err := cache.Set([]byte("page"), []byte("<html>...</html>\n"), backlite.ExpireNever); err != nil {
		log.Fatal(err)
	}
	r, err := cache.OpenReader([]byte("page"))
	if err != nil {
		log.Fatal(err) // ErrNotFound on a miss
	}
	defer r.Close()
	fmt.Println(r.Size(), "bytes")
	// A value of any size, copied 256 KiB at a time; ErrNotFound if it proves damaged.
	if _, err := io.Copy(os.Stdout, r); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 17 bytes
	// <html>...</html>
}
