package setup

import (
	"bytes"
	"fmt"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"
)

// The QR image formats.
const (
	FormatPNG = "png"
	FormatSVG = "svg"
)

// qrLevel is the error correction of the codes: Medium (15 %) keeps the
// long OwnTracks links at a size a phone reads off a screen or a print.
const qrLevel = qrcode.Medium

// pngModule is the size of a QR module in a PNG, in pixels.
const pngModule = 8

// PNG is the QR code of text as a PNG image: square, 8 pixels a module,
// with the standard quiet zone of 4 white modules.
func PNG(text string) ([]byte, error) {
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	return q.PNG(-pngModule)
}

// SVG is the QR code of text as a standalone SVG image: a white square with
// the quiet zone, and the dark modules as one path of unit squares, scaled
// to any size without blur.
func SVG(text string) ([]byte, error) {
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		return nil, fmt.Errorf("QR code: %w", err)
	}
	bits := q.Bitmap() // with the quiet zone
	n := strconv.Itoa(len(bits))
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 ` + n + ` ` + n +
		`" width="` + strconv.Itoa(len(bits)*pngModule) + `" height="` + strconv.Itoa(len(bits)*pngModule) +
		`" shape-rendering="crispEdges">` + "\n")
	b.WriteString(`<rect width="` + n + `" height="` + n + `" fill="#fff"/>` + "\n")
	b.WriteString(`<path fill="#000" d="`)
	for y, row := range bits {
		for x, dark := range row {
			if dark {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/>` + "\n</svg>\n")
	return b.Bytes(), nil
}

// Image is the QR code of text in format (FormatPNG or FormatSVG), with its
// media type.
func Image(text, format string) (data []byte, mediaType string, err error) {
	switch format {
	case FormatPNG:
		data, err = PNG(text)
		return data, "image/png", err
	case FormatSVG:
		data, err = SVG(text)
		return data, "image/svg+xml", err
	}
	return nil, "", fmt.Errorf("unknown image format %.16q: want png or svg", format)
}

// Terminal is the QR code of text drawn with block characters, two rows of
// modules a line, for a terminal with a dark background.
func Terminal(text string) (string, error) {
	q, err := qrcode.New(text, qrLevel)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	return q.ToSmallString(false), nil
}
