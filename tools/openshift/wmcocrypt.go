package main

// The username annotation as WMCO writes and reads it (pkg/crypto/crypto.go, with the
// golang.org/x/crypto version WMCO's go.mod pins): symmetric OpenPGP with the private
// key's bytes as passphrase, armored as "ENCRYPTED DATA", the armor lines cut, trimmed,
// newlines replaced by "<wmcoMarker>". Written here from that description, to check
// syncer's implementation against the Go library WMCO uses.
//
//	openshift-check wmco-encrypt KEYFILE < plaintext   -> annotation value
//	openshift-check wmco-decrypt KEYFILE < annotation  -> plaintext

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/openpgp"
	"golang.org/x/crypto/openpgp/armor"
)

const (
	marker   = "<wmcoMarker>"
	armorTag = "ENCRYPTED DATA"
	begin    = "-----BEGIN " + armorTag + "-----"
	end      = "-----END " + armorTag + "-----"
)

func wmcoEncrypt(plain, key []byte) (string, error) {
	var buf bytes.Buffer
	enc, err := armor.Encode(&buf, armorTag, nil)
	if err != nil {
		return "", err
	}
	w, err := openpgp.SymmetricallyEncrypt(enc, key, nil, nil)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(plain); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	text := strings.TrimSuffix(strings.TrimPrefix(buf.String(), begin), end)
	return strings.ReplaceAll(strings.Trim(text, "\n"), "\n", marker), nil
}

func wmcoDecrypt(value string, key []byte) ([]byte, error) {
	text := strings.ReplaceAll(value, marker, "\n")
	if !strings.HasPrefix(text, begin) {
		text = begin + "\n\n" + text + "\n" + end
	}
	block, err := armor.Decode(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	tried := false
	md, err := openpgp.ReadMessage(block.Body, nil, func([]openpgp.Key, bool) ([]byte, error) {
		if tried {
			return nil, fmt.Errorf("invalid passphrase")
		}
		tried = true
		return key, nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(md.UnverifiedBody)
}

func wmcoCrypt(mode, keyFile string) int {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openshift-check:", err)
		return 2
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openshift-check:", err)
		return 2
	}
	if mode == "wmco-encrypt" {
		out, err := wmcoEncrypt(in, key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "openshift-check:", err)
			return 1
		}
		fmt.Print(out)
		return 0
	}
	out, err := wmcoDecrypt(string(in), key)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openshift-check:", err)
		return 1
	}
	_, _ = os.Stdout.Write(out)
	return 0
}
