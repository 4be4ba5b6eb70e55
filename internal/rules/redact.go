package rules

import (
	"net/url"
	"strings"

	"github.com/edgewise-iot/edgewise/internal/rules/action"
)

// Redacted replaces the secrets of action specs in API responses and CLI
// output; a definition sent back with it keeps the stored secret.
const Redacted = "********"

// secretWords mark header names and URL query parameters holding secrets.
var secretWords = []string{"auth", "token", "secret", "password", "passwd", "key", "cookie", "signature", "credential"}

func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactURL hides a URL's password and the values of secret-looking query
// parameters. Templates (${...}) in the URL are left as written.
func redactURL(raw string) string {
	if raw == "" {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	changed := false
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Redacted)
			changed = true
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if secretName(k) {
				q[k] = []string{Redacted}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return raw
	}
	s := u.String()
	// url.String escapes the marker's characters.
	return strings.ReplaceAll(s, url.QueryEscape(Redacted), Redacted)
}

func redactSpec(s action.Spec) action.Spec {
	if s.Password != "" {
		s.Password = Redacted
	}
	if s.BearerToken != "" {
		s.BearerToken = Redacted
	}
	s.URL = redactURL(s.URL)
	if len(s.Headers) > 0 {
		h := make(map[string]string, len(s.Headers))
		for k, v := range s.Headers {
			if secretName(k) && v != "" {
				v = Redacted
			}
			h[k] = v
		}
		s.Headers = h
	}
	return s
}

// Redact returns r with the secrets of its actions replaced by Redacted:
// passwords, bearer tokens, passwords in URLs, secret-looking URL query
// parameters and header values (names containing auth, token, secret,
// password, key, cookie, signature or credential).
func (r Rule) Redact() Rule {
	acts := make([]action.Spec, len(r.Actions))
	for i, a := range r.Actions {
		acts[i] = redactSpec(a)
	}
	r.Actions = acts
	if r.ErrorAction != nil {
		e := redactSpec(*r.ErrorAction)
		r.ErrorAction = &e
	}
	return r
}

// keepSecrets puts the stored secrets back into spec fields that still
// hold the redacted form (a definition read from the API and sent back).
func keepSecrets(s, old action.Spec) action.Spec {
	if s.Type != old.Type {
		return s
	}
	if s.Password == Redacted {
		s.Password = old.Password
	}
	if s.BearerToken == Redacted {
		s.BearerToken = old.BearerToken
	}
	if strings.Contains(s.URL, Redacted) && s.URL == redactURL(old.URL) {
		s.URL = old.URL
	}
	for k, v := range s.Headers {
		if v == Redacted {
			if ov, ok := old.Headers[k]; ok {
				s.Headers[k] = ov
			}
		}
	}
	return s
}

// unredact applies keepSecrets action by action (same position and type).
func unredact(r, old Rule) Rule {
	acts := make([]action.Spec, len(r.Actions))
	for i, a := range r.Actions {
		if i < len(old.Actions) {
			a = keepSecrets(a, old.Actions[i])
		}
		acts[i] = a
	}
	r.Actions = acts
	if r.ErrorAction != nil && old.ErrorAction != nil {
		e := keepSecrets(*r.ErrorAction, *old.ErrorAction)
		r.ErrorAction = &e
	}
	return r
}
