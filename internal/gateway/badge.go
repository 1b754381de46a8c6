package gateway

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The kinds of badge.
const (
	badgeOnline       = "online"
	badgeVerified     = "verified"
	badgeAvailability = "availability"
)

// Badge colours.
const (
	colourGood    = "#2e7d32"
	colourWarn    = "#f9a825"
	colourBad     = "#c62828"
	colourUnknown = "#757575"
	colourLabel   = "#444444"
)

// badgeState is what a badge says of m, a nil m meaning the directory
// does not know the instance.
func badgeState(kind string, m *Mirror) (label, value, colour string) {
	switch kind {
	case badgeOnline:
		label = "backup server"
		switch {
		case m == nil:
			value, colour = "unknown", colourUnknown
		case m.Online:
			value, colour = "online", colourGood
		default:
			value, colour = "offline", colourBad
		}
	case badgeVerified:
		label = "code integrity"
		switch {
		case m == nil:
			value, colour = "unknown", colourUnknown
		case m.Verified:
			value, colour = "verified", colourGood
		default:
			value, colour = "unverified", colourWarn
		}
	case badgeAvailability:
		label = "availability"
		switch {
		case m == nil || m.Availability < 0 || math.IsNaN(m.Availability):
			value, colour = "unknown", colourUnknown
		default:
			a := min(m.Availability, 1)
			// Floor, so that 99.96% never reads as 100%.
			value = fmt.Sprintf("%.1f%%", math.Floor(a*1000)/10)
			switch {
			case a >= 0.99:
				colour = colourGood
			case a >= 0.9:
				colour = colourWarn
			default:
				colour = colourBad
			}
		}
	}
	return label, value, colour
}

// textWidth estimates the width in pixels of s in 11px Verdana, close
// enough for a badge.
func textWidth(s string) int {
	w := 0.0
	for _, r := range s {
		switch {
		case strings.ContainsRune("ijlt.,:;!|' ", r):
			w += 3.6
		case strings.ContainsRune("mwMW%", r):
			w += 10
		case r >= 'A' && r <= 'Z':
			w += 7.6
		default:
			w += 6.7
		}
	}
	return int(math.Ceil(w))
}

// drawBadge draws a two-part SVG badge: a grey label and a coloured value.
func drawBadge(kind string, m *Mirror) []byte {
	label, value, colour := badgeState(kind, m)
	lw, vw := textWidth(label)+12, textWidth(value)+12
	w := lw + vw
	esc := html.EscapeString
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`, w, esc(label), esc(value))
	fmt.Fprintf(&b, `<title>%s: %s</title>`, esc(label), esc(value))
	fmt.Fprintf(&b, `<rect width="%d" height="20" rx="3" fill="%s"/>`, w, colourLabel)
	fmt.Fprintf(&b, `<rect x="%d" width="%d" height="20" rx="3" fill="%s"/>`, lw, vw, colour)
	fmt.Fprintf(&b, `<rect x="%d" width="4" height="20" fill="%s"/>`, lw, colour)
	b.WriteString(`<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">`)
	fmt.Fprintf(&b, `<text x="%d" y="14">%s</text>`, lw/2, esc(label))
	fmt.Fprintf(&b, `<text x="%d" y="14" data-state="%s">%s</text>`, lw+vw/2, esc(value), esc(value))
	b.WriteString(`</g></svg>`)
	return []byte(b.String())
}
