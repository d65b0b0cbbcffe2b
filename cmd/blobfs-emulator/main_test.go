package main

import "testing"

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:0", true},
		{"127.0.0.1:8080", true},
		{"[::1]:0", true},
		{"localhost:1", true},
		{"0.0.0.0:0", false},
		{":8080", false},
		{"169.254.169.254:80", false},
		{"10.0.0.4:80", false},
		{"nonsense", false},
	}
	for _, tt := range tests {
		if got := loopback(tt.addr); got != tt.want {
			t.Errorf("loopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
