package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// The QR code is a square of block characters, two modules per cell.
func TestPrintQR(t *testing.T) {
	var b bytes.Buffer
	if err := printQR(&b, "kadlan1-"+strings.Repeat("A", 500)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	w := utf8.RuneCountInString(lines[0])
	if w < 41 || len(lines) != (w+1)/2 {
		t.Fatalf("%d lines of %d cells", len(lines), w)
	}
	for _, l := range lines {
		if utf8.RuneCountInString(l) != w || strings.Trim(l, " ▀▄█") != "" {
			t.Fatalf("line %q", l)
		}
	}
	// The quiet zone is light: the first row is all full blocks.
	if strings.Trim(lines[0], "█") != "" {
		t.Fatalf("first row %q", lines[0])
	}
}
