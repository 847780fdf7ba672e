package backlite_test

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// startRedis starts a private redis-server on a free loopback port, stopped when the
// test ends.
func startRedis(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "redis.log")
	if err := cmd.Start(); err != nil {
		t.Fatalf("redis-server (apt-get install redis-server): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "redis://" + addr
}

func TestRemoteTierSharesValuesBetweenFiles(t *testing.T) {
	url := startRedis(t)
	dir := t.TempDir()
	opts := []backlite.Option{backlite.WithRemote(url), backlite.WithRemoteNamespace("go-test"),
		backlite.WithRemoteTimeout(300 * time.Millisecond)}
	a := open(t, filepath.Join(dir, "a.db"), append(opts, backlite.WithRemoteMode(backlite.RemoteReadWrite))...)
	if err := a.Set([]byte("k"), []byte("from a"), backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	b := open(t, filepath.Join(dir, "b.db"), append(opts, backlite.WithRemoteMode(backlite.RemoteReadOnly))...)
	v, err := b.Get([]byte("k"))
	if err != nil || string(v) != "from a" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	st, err := b.RemoteStats()
	if err != nil || st.Hits != 1 || !st.Connected {
		t.Fatalf("RemoteStats = %+v, %v", st, err)
	}
	c := open(t, filepath.Join(dir, "c.db"), append(opts, backlite.WithRemoteMode(backlite.RemoteWriteBehind))...)
	if err := c.Set([]byte("wb"), []byte("queued"), backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteOptionsAreChecked(t *testing.T) {
	dir := t.TempDir()
	for i, opt := range []backlite.Option{
		backlite.WithRemote("memcache://h:1"), backlite.WithRemote("redis://h:x"),
		backlite.WithRemote("redis://h\x00"), backlite.WithRemoteNamespace("a b"),
		backlite.WithRemoteTimeout(0), backlite.WithRemoteTimeout(-time.Second),
		backlite.WithRemoteMode(9),
	} {
		path := filepath.Join(dir, fmt.Sprintf("%d.db", i))
		_, err := backlite.Open(path, opt)
		var e *backlite.Error
		if !errors.As(err, &e) || e.Code != backlite.CodeInvalidArgument {
			t.Errorf("option %d: err = %v", i, err)
		}
		if _, statErr := os.Stat(path); statErr == nil {
			t.Errorf("option %d: a file was created", i)
		}
	}
}

func TestRemoteSchemesTakeAnyCase(t *testing.T) {
	url := startRedis(t)
	s := open(t, filepath.Join(t.TempDir(), "a.db"), backlite.WithRemote("REDIS"+url[len("redis"):]),
		backlite.WithRemoteTimeout(5*time.Second))
	if err := s.Set([]byte("k"), []byte("v"), backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	st, err := s.RemoteStats()
	if err != nil || st.Writes != 1 || st.Errors != 0 || !st.Connected {
		t.Fatalf("RemoteStats = %+v, %v", st, err)
	}
}

// A remote nobody answers (port 1 on the loopback) opens, every call succeeds locally
// (the reader too), and RemoteStats says it: not connected, the failed round trips
// counted.
func TestAnUnreachableRemoteOpensAndEveryCallSucceedsLocally(t *testing.T) {
	for _, mode := range []backlite.RemoteMode{backlite.RemoteReadWrite, backlite.RemoteReadOnly, backlite.RemoteWriteBehind} {
		s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithRemote("redis://u:hunter2@127.0.0.1:1"),
			backlite.WithRemoteTimeout(100*time.Millisecond), backlite.WithRemoteMode(mode))
		if err := s.Set([]byte("k"), bigValue(300*1024), backlite.ExpireNever); err != nil {
			t.Fatalf("mode %d: Set: %v", mode, err)
		}
		if _, err := s.Get([]byte("missing")); !errors.Is(err, backlite.ErrNotFound) {
			t.Fatalf("mode %d: Get of a miss: %v", mode, err)
		}
		r, err := s.OpenReader([]byte("k"))
		if err != nil {
			t.Fatalf("mode %d: OpenReader: %v", mode, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || len(got) != 300*1024 {
			t.Fatalf("mode %d: read %d bytes, %v", mode, len(got), err)
		}
		st, err := s.RemoteStats()
		if err != nil || st.Connected || st.Errors == 0 || st.Hits != 0 {
			t.Fatalf("mode %d: RemoteStats = %+v, %v", mode, st, err)
		}
	}
}

// A timeout under a millisecond is refused by the binding with the reason, as zero and
// negative ones are (the library takes whole milliseconds, at least 1).
func TestARemoteTimeoutUnderAMillisecondSaysWhy(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, time.Microsecond, 999 * time.Microsecond} {
		_, err := backlite.Open(":memory:", backlite.WithRemote("redis://127.0.0.1:1"), backlite.WithRemoteTimeout(d))
		var e *backlite.Error
		if !errors.As(err, &e) || e.Code != backlite.CodeInvalidArgument || !strings.Contains(e.Message, "1 ms or more") {
			t.Errorf("WithRemoteTimeout(%v): %v", d, err)
		}
	}
}

// A timeout of a millisecond or more is rounded up to whole milliseconds, as every
// duration of this package is: truncated, 1.9 ms bounded each round trip at 1 ms,
// shorter than asked (where C++'s remote_timeout rounds up).
func TestARemoteTimeoutIsRoundedUpToWholeMilliseconds(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		time.Millisecond:                                 1,
		1500 * time.Microsecond:                          2,
		1900 * time.Microsecond:                          2,
		250 * time.Millisecond:                           250,
		time.Duration(math.MaxUint32) * time.Millisecond: math.MaxUint32,
	} {
		if got, err := backlite.RemoteTimeoutMS(d); err != nil || got != want {
			t.Errorf("RemoteTimeoutMS(%v) = %d, %v; want %d", d, got, err, want)
		}
	}
	for _, d := range []time.Duration{0, -time.Second, 999 * time.Microsecond,
		time.Duration(math.MaxUint32)*time.Millisecond + time.Nanosecond} {
		if _, err := backlite.RemoteTimeoutMS(d); !errors.Is(err, backlite.ErrInvalidArgument) {
			t.Errorf("RemoteTimeoutMS(%v): %v, want ErrInvalidArgument", d, err)
		}
	}
}
