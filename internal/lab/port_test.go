package lab

import (
	"net"
	"strconv"
	"testing"
)

// Lab ports come from below the kernel's ephemeral range, where no
// outgoing connection takes them between two starts of a node.
func TestFreePortBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if low-15000 >= 1000 && (p < 15000 || p >= low) {
			t.Fatalf("port %d is not in [15000, %d)", p, low)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
		seen[p] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 picks gave only %d ports: parallel lab nodes would meet", len(seen))
	}
}
