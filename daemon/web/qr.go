package web

import (
	"fmt"
	"strings"

	"github.com/skip2/go-qrcode"
)

// QRSVG renders s as a QR code in SVG (the library `kadlan net invite
// --qr` prints with): one path of dark modules on a white square, quiet
// zone included, each module one user unit.
func QRSVG(s string) (string, error) {
	q, err := qrcode.New(s, qrcode.Low)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	bm := q.Bitmap() // true: dark
	n := len(bm)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n)
	for y, row := range bm {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			run := 1
			for x+run < len(row) && row[x+run] {
				run++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
