package coffer

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"syscall"
)

// The armored text form: the binary form in base64, 64 characters a line.
const (
	armorBegin     = "-----BEGIN COFFER DEFINITION-----\n"
	armorEnd       = "-----END COFFER DEFINITION-----\n"
	armorLineChars = 64
)

// maxArmoredBytes is the armored size of a MaxSealedBytes file.
var maxArmoredBytes = armoredLen(MaxSealedBytes)

// Armor returns the text form of a binary sealed file: a BEGIN line, the
// base64 of the file in lines of 64 characters, and an END line.
func Armor(bin []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(bin)
	out := make([]byte, 0, armoredLen(len(bin)))
	out = append(out, armorBegin...)
	for len(enc) > 0 {
		n := min(len(enc), armorLineChars)
		out = append(out, enc[:n]...)
		out = append(out, '\n')
		enc = enc[n:]
	}
	return append(out, armorEnd...)
}

func armoredLen(n int) int {
	chars := base64.StdEncoding.EncodedLen(n)
	return len(armorBegin) + chars + (chars+armorLineChars-1)/armorLineChars + len(armorEnd)
}

// Dearmor returns the binary form of an armored file. It accepts only what
// Armor produces: the exact BEGIN and END lines, full 64-character lines,
// canonical padded base64, LF line ends and nothing after the END line.
func Dearmor(text []byte) ([]byte, error) {
	if len(text) > maxArmoredBytes {
		return nil, malformed("armored file of %d bytes exceeds the limit", len(text))
	}
	if !bytes.HasPrefix(text, []byte(armorBegin)) || !bytes.HasSuffix(text, []byte(armorEnd)) ||
		len(text) <= len(armorBegin)+len(armorEnd) {
		return nil, malformed("armor without its BEGIN and END lines")
	}
	body := text[len(armorBegin) : len(text)-len(armorEnd)]
	b64 := make([]byte, 0, len(body))
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 || i > armorLineChars || i == 0 {
			return nil, malformed("armor line of the wrong length")
		}
		if i < armorLineChars && i+1 != len(body) {
			return nil, malformed("short armor line before the last")
		}
		b64 = append(b64, body[:i]...)
		body = body[i+1:]
	}
	bin := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	n, err := base64.StdEncoding.Strict().Decode(bin, b64)
	if err != nil {
		return nil, malformed("armor is not canonical base64")
	}
	bin = bin[:n]
	if base64.StdEncoding.EncodeToString(bin) != string(b64) {
		return nil, malformed("armor is not canonical base64")
	}
	return bin, nil
}

// SealedBinary returns the binary form of a sealed file given in either
// form, checking the size limit.
func SealedBinary(file []byte) ([]byte, error) {
	if bytes.HasPrefix(file, []byte(armorBegin)) {
		return Dearmor(file)
	}
	if len(file) > MaxSealedBytes {
		return nil, malformed("%d bytes exceeds the limit of %d", len(file), MaxSealedBytes)
	}
	if !bytes.HasPrefix(file, []byte(sealedMagic)) {
		return nil, malformed("not a sealed definition (neither the binary nor the armored form)")
	}
	return file, nil
}

// ReadSealedFile reads a sealed definition from path, in either form, and
// returns its binary form. The size is checked on the opened file before
// reading, and the read is bounded in case the file grows meanwhile.
func ReadSealedFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("coffer: opening sealed definition: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("coffer: sealed definition %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrMalformedDefinition, path)
	}
	if fi.Size() > int64(maxArmoredBytes) {
		return nil, fmt.Errorf("%w: %s has %d bytes, more than the limit", ErrMalformedDefinition, path, fi.Size())
	}
	// One buffer sized from Stat, as os.ReadFile does: io.ReadAll's
	// doubling copies a 6 MiB file about 15 times over (docs/server.md,
	// "Load time").
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, int64(maxArmoredBytes)+1)); err != nil {
		return nil, fmt.Errorf("coffer: reading sealed definition %s: %w", path, err)
	}
	bin, err := SealedBinary(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bin, nil
}
