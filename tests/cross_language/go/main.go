// One participant of the cross-language test (Go): writes its keys, reads back every
// other participant's keys byte for byte, then asks for the shared memoised key
// through CachedContext (the lease API).
//
//	participant PATH NAME NAMES COMPUTE_LOG
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

const keys = 20

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 5 {
		os.Exit(2)
	}
	path, me, names, computeLog := os.Args[1], os.Args[2], strings.Split(os.Args[3], ","), os.Args[4]
	s, err := backlite.Open(path)
	if err != nil {
		die("open: %v", err)
	}
	defer s.Close()
	for i := 0; i < keys; i++ {
		if err := s.Set([]byte(fmt.Sprintf("%s-%d", me, i)), []byte(fmt.Sprintf("%s wrote %d", me, i)), backlite.ExpireNever); err != nil {
			die("set: %v", err)
		}
	}
	for _, other := range names {
		for i := 0; i < keys; i++ {
			key, want := fmt.Sprintf("%s-%d", other, i), fmt.Sprintf("%s wrote %d", other, i)
			var got []byte
			for tries := 0; ; tries++ { // up to 30 s for the others to start
				got, err = s.Get([]byte(key))
				if err == nil || !errors.Is(err, backlite.ErrNotFound) || tries == 3000 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil || string(got) != want {
				die("%s: got %q, %v", key, got, err)
			}
		}
	}
	value, err := s.CachedContext(context.Background(), []byte("shared-memo"), func(context.Context) ([]byte, error) {
		log, err := os.OpenFile(computeLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(log, me)
		log.Close()
		time.Sleep(500 * time.Millisecond)
		return []byte("computed by " + me), nil
	})
	if err != nil {
		die("CachedContext: %v", err)
	}
	fmt.Printf("%s: %s\n", me, value)
}
