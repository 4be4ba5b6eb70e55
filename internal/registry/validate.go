package registry

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Validation limits.
const (
	MaxNameLen           = 128
	MaxAttributeKeyLen   = 128
	MaxAttributeValueLen = 800
	MaxAttributes        = 50
	// ReservedName is the username of the administrative MQTT login; no
	// thing may take it (in any letter case).
	ReservedName = "admin"
)

// ValidateThing checks the client-supplied fields of t (name, type,
// attributes) and returns an error wrapping ErrInvalid that names the first
// offending field and the rule it breaks.
func ValidateThing(t Thing) error {
	if err := validateName("name", t.Name); err != nil {
		return err
	}
	if strings.EqualFold(t.Name, ReservedName) {
		return fmt.Errorf("%w: name %q is reserved", ErrInvalid, t.Name)
	}
	if t.Type != "" {
		if err := validateName("type", t.Type); err != nil {
			return err
		}
	}
	if len(t.Attributes) > MaxAttributes {
		return fmt.Errorf("%w: at most %d attributes are allowed, got %d", ErrInvalid, MaxAttributes, len(t.Attributes))
	}
	for k, v := range t.Attributes {
		if err := validateAttributeKey(k); err != nil {
			return err
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: attribute %q: value is not valid UTF-8", ErrInvalid, k)
		}
		if n := utf8.RuneCountInString(v); n > MaxAttributeValueLen {
			return fmt.Errorf("%w: attribute %q: value must be at most %d characters, got %d", ErrInvalid, k, MaxAttributeValueLen, n)
		}
	}
	return nil
}

// validateName checks a thing name or type: 1..MaxNameLen characters of
// A-Z a-z 0-9 _ . : -
func validateName(field, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s must not be empty", ErrInvalid, field)
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("%w: %s must be at most %d characters, got %d", ErrInvalid, field, MaxNameLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isNameChar(c) {
			return fmt.Errorf("%w: %s %s: character %s at offset %d is not allowed (use A-Z a-z 0-9 _ . : -)",
				ErrInvalid, field, quoteShort(s), quoteChar(s, i), i)
		}
	}
	return nil
}

func validateAttributeKey(k string) error {
	if k == "" {
		return fmt.Errorf("%w: attribute key must not be empty", ErrInvalid)
	}
	if len(k) > MaxAttributeKeyLen {
		return fmt.Errorf("%w: attribute key must be at most %d characters, got %d", ErrInvalid, MaxAttributeKeyLen, len(k))
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isNameChar(c) || c == ':' {
			return fmt.Errorf("%w: attribute key %s: character %s at offset %d is not allowed (use A-Z a-z 0-9 _ . -)",
				ErrInvalid, quoteShort(k), quoteChar(k, i), i)
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '-'
}

func quoteShort(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

func quoteChar(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf("%q", r)
}
