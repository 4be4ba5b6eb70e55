package registry_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewise-iot/edgewise/internal/registry"
	"github.com/edgewise-iot/edgewise/internal/store"
)

func openDB(t testing.TB, path string) *registry.Registry {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r, err := registry.New(ctx, db, registry.Options{HashCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	return openDB(t, filepath.Join(t.TempDir(), "meta.db"))
}

func attrs(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

func TestValidateThing(t *testing.T) {
	tests := []struct {
		name    string
		thing   registry.Thing
		wantErr string // substring of the error; "" means valid
	}{
		{"minimal", registry.Thing{Name: "a"}, ""},
		{"all name characters", registry.Thing{Name: "Az09_.:-"}, ""},
		{"max name length", registry.Thing{Name: strings.Repeat("n", 128)}, ""},
		{"full thing", registry.Thing{Name: "sensor-1", Type: "temp.v2", Attributes: map[string]string{"site": "lyon", "floor_2.x-y": ""}}, ""},
		{"max attributes", registry.Thing{Name: "a", Attributes: attrs(50)}, ""},
		{"max value length in characters", registry.Thing{Name: "a", Attributes: map[string]string{"k": strings.Repeat("é", 800)}}, ""},
		{"max key length", registry.Thing{Name: "a", Attributes: map[string]string{strings.Repeat("k", 128): "v"}}, ""},
		{"empty name", registry.Thing{}, "name must not be empty"},
		{"name too long", registry.Thing{Name: strings.Repeat("n", 129)}, "name must be at most 128"},
		{"slash in name", registry.Thing{Name: "a/b"}, "name \"a/b\": character '/' at offset 1"},
		{"plus in name", registry.Thing{Name: "a+"}, "character '+'"},
		{"hash in name", registry.Thing{Name: "#"}, "character '#'"},
		{"dollar in name", registry.Thing{Name: "$SYS"}, "character '$'"},
		{"space in name", registry.Thing{Name: "a b"}, "character ' '"},
		{"non-ascii name", registry.Thing{Name: "capteur-é"}, "character 'é'"},
		{"reserved name", registry.Thing{Name: "admin"}, "name \"admin\" is reserved"},
		{"reserved name any case", registry.Thing{Name: "AdMiN"}, "is reserved"},
		{"bad type", registry.Thing{Name: "a", Type: "x/y"}, "type \"x/y\""},
		{"type too long", registry.Thing{Name: "a", Type: strings.Repeat("t", 129)}, "type must be at most 128"},
		{"too many attributes", registry.Thing{Name: "a", Attributes: attrs(51)}, "at most 50 attributes"},
		{"empty attribute key", registry.Thing{Name: "a", Attributes: map[string]string{"": "v"}}, "attribute key must not be empty"},
		{"attribute key too long", registry.Thing{Name: "a", Attributes: map[string]string{strings.Repeat("k", 129): "v"}}, "attribute key must be at most 128"},
		{"colon in attribute key", registry.Thing{Name: "a", Attributes: map[string]string{"a:b": "v"}}, "attribute key \"a:b\""},
		{"slash in attribute key", registry.Thing{Name: "a", Attributes: map[string]string{"a/b": "v"}}, "character '/'"},
		{"attribute value too long", registry.Thing{Name: "a", Attributes: map[string]string{"k": strings.Repeat("v", 801)}}, "value must be at most 800"},
		{"attribute value not utf-8", registry.Thing{Name: "a", Attributes: map[string]string{"k": "\xff"}}, "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := registry.ValidateThing(tc.thing)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateThing = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, registry.ErrInvalid) {
				t.Fatalf("ValidateThing = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestCreateGet(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	in := registry.Thing{Name: "dev-1", Type: "sensor", Attributes: map[string]string{"site": "lyon"},
		CreatedAt: time.Unix(1, 0)} // ignored
	before := time.Now().Add(-time.Second)
	got, creds, err := r.CreateThing(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "dev-1" || got.Type != "sensor" || got.Attributes["site"] != "lyon" {
		t.Errorf("created %+v", got)
	}
	if got.CreatedAt.Before(before) || !got.UpdatedAt.Equal(got.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("timestamps %v %v", got.CreatedAt, got.UpdatedAt)
	}
	if creds.Username != "dev-1" {
		t.Errorf("username %q", creds.Username)
	}
	raw, err := base64.RawURLEncoding.DecodeString(creds.Password)
	if err != nil || len(raw) < 16 {
		t.Errorf("password %q is not >= 128 bits of URL-safe base64 (%v)", creds.Password, err)
	}
	// Caller's map must not alias the stored one.
	in.Attributes["site"] = "paris"
	got2, err := r.GetThing(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if got2.Attributes["site"] != "lyon" || !got2.CreatedAt.Equal(got.CreatedAt) || got2.Type != "sensor" {
		t.Errorf("GetThing = %+v, want %+v", got2, got)
	}
	// A second thing gets a different password.
	_, creds2, err := r.CreateThing(ctx, registry.Thing{Name: "dev-2"})
	if err != nil {
		t.Fatal(err)
	}
	if creds2.Password == creds.Password {
		t.Error("two things got the same password")
	}
	got3, err := r.GetThing(ctx, "dev-2")
	if err != nil || got3.Attributes != nil || got3.Type != "" {
		t.Errorf("GetThing(dev-2) = %+v, %v", got3, err)
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	if _, _, err := r.CreateThing(ctx, registry.Thing{Name: "dup"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		thing registry.Thing
		want  error
	}{
		{"duplicate", registry.Thing{Name: "dup", Type: "other"}, registry.ErrExists},
		{"invalid", registry.Thing{Name: "a/b"}, registry.ErrInvalid},
		{"reserved", registry.Thing{Name: "admin"}, registry.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := r.CreateThing(ctx, tc.thing)
			if !errors.Is(err, tc.want) {
				t.Fatalf("CreateThing = %v, want %v", err, tc.want)
			}
		})
	}
	// The duplicate attempt must not have changed the original.
	got, err := r.GetThing(ctx, "dup")
	if err != nil || got.Type != "" {
		t.Errorf("GetThing(dup) = %+v, %v", got, err)
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	for _, name := range []string{"missing", "in/valid", ""} {
		if _, err := r.GetThing(ctx, name); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("GetThing(%q) = %v", name, err)
		}
		if err := r.DeleteThing(ctx, name); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("DeleteThing(%q) = %v", name, err)
		}
		if _, err := r.ResetCredentials(ctx, name); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("ResetCredentials(%q) = %v", name, err)
		}
	}
}

func TestListPagination(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	var all []string
	for i := range 25 {
		typ := "even"
		if i%2 == 1 {
			typ = "odd"
		}
		name := fmt.Sprintf("dev-%02d", i)
		all = append(all, name)
		if _, _, err := r.CreateThing(ctx, registry.Thing{Name: name, Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		opts  registry.ListOptions
		pages []int // sizes of successive pages
		want  func(string) bool
	}{
		{"default limit", registry.ListOptions{}, []int{25}, nil},
		{"pages of 10", registry.ListOptions{Limit: 10}, []int{10, 10, 5}, nil},
		{"exact multiple", registry.ListOptions{Limit: 5}, []int{5, 5, 5, 5, 5}, nil},
		{"limit above max is clamped", registry.ListOptions{Limit: 5000}, []int{25}, nil},
		{"type filter", registry.ListOptions{Limit: 4, Type: "odd"}, []int{4, 4, 4}, func(n string) bool { return n[len(n)-1]%2 == 1 }},
		{"cursor", registry.ListOptions{Limit: 10, After: "dev-19"}, []int{5}, func(n string) bool { return n > "dev-19" }},
		{"unknown type", registry.ListOptions{Type: "none"}, []int{0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			var names []string
			for i, size := range tc.pages {
				page, next, err := r.ListThings(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) != size {
					t.Fatalf("page %d has %d things, want %d", i, len(page), size)
				}
				last := i == len(tc.pages)-1
				if last != (next == "") {
					t.Fatalf("page %d: next = %q", i, next)
				}
				for _, th := range page {
					names = append(names, th.Name)
				}
				o.After = next
			}
			for i := 1; i < len(names); i++ {
				if names[i-1] >= names[i] {
					t.Fatalf("not strictly ordered: %v", names)
				}
			}
			for _, n := range names {
				if tc.want != nil && !tc.want(n) {
					t.Errorf("unexpected %q", n)
				}
			}
			if tc.want == nil && len(names) > 0 && len(names) != len(all) {
				t.Errorf("listed %d things, want %d", len(names), len(all))
			}
		})
	}
	for _, o := range []registry.ListOptions{{Limit: -1}, {Type: "bad/type"}} {
		if _, _, err := r.ListThings(ctx, o); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("ListThings(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	_, creds, err := r.CreateThing(ctx, registry.Thing{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyPassword(ctx, creds.Username, creds.Password); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteThing(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetThing(ctx, "gone"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("GetThing after delete = %v", err)
	}
	if _, err := r.VerifyPassword(ctx, creds.Username, creds.Password); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("VerifyPassword after delete = %v (cache not purged?)", err)
	}
	if err := r.DeleteThing(ctx, "gone"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("second delete = %v", err)
	}
	// The name is free again, with new credentials; the old password must not work.
	_, creds2, err := r.CreateThing(ctx, registry.Thing{Name: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyPassword(ctx, "gone", creds.Password); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("old password on recreated thing = %v", err)
	}
	if _, err := r.VerifyPassword(ctx, "gone", creds2.Password); err != nil {
		t.Errorf("new password on recreated thing = %v", err)
	}
}

func TestVerifyPassword(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	_, creds, err := r.CreateThing(ctx, registry.Thing{Name: "dev", Type: "sensor"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"correct", "dev", creds.Password, true},
		{"correct again (cached)", "dev", creds.Password, true},
		{"wrong password", "dev", creds.Password + "x", false},
		{"prefix of password", "dev", creds.Password[:10], false},
		{"empty password", "dev", "", false},
		{"too long password", "dev", creds.Password + strings.Repeat("x", 100), false},
		{"unknown user", "nobody", creds.Password, false},
		{"admin", "admin", creds.Password, false},
		{"invalid username", "de/v", creds.Password, false},
		{"empty username", "", creds.Password, false},
		{"case differs", "DEV", creds.Password, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th, err := r.VerifyPassword(ctx, tc.user, tc.pass)
			if tc.ok {
				if err != nil || th.Name != "dev" || th.Type != "sensor" {
					t.Fatalf("VerifyPassword = %+v, %v", th, err)
				}
				return
			}
			if !errors.Is(err, registry.ErrBadCredentials) {
				t.Fatalf("VerifyPassword = %v, want ErrBadCredentials", err)
			}
		})
	}
}

func TestResetCredentials(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	_, old, err := r.CreateThing(ctx, registry.Thing{Name: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyPassword(ctx, "dev", old.Password); err != nil { // now cached
		t.Fatal(err)
	}
	fresh, err := r.ResetCredentials(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Username != "dev" || fresh.Password == old.Password {
		t.Fatalf("reset returned %+v", fresh)
	}
	if _, err := r.VerifyPassword(ctx, "dev", old.Password); !errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("old password after reset = %v", err)
	}
	if _, err := r.VerifyPassword(ctx, "dev", fresh.Password); err != nil {
		t.Errorf("new password after reset = %v", err)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	var creds registry.Credentials
	{
		db, err := store.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := registry.New(ctx, db, registry.Options{HashCost: 4})
		if err != nil {
			t.Fatal(err)
		}
		if _, creds, err = r.CreateThing(ctx, registry.Thing{Name: "dev", Attributes: map[string]string{"a": "b"}}); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	// Second and third opens: migrations are idempotent, data is there.
	for range 2 {
		r := openDB(t, path)
		th, err := r.GetThing(ctx, "dev")
		if err != nil || th.Attributes["a"] != "b" {
			t.Fatalf("GetThing after reopen = %+v, %v", th, err)
		}
		if _, err := r.VerifyPassword(ctx, "dev", creds.Password); err != nil {
			t.Fatalf("VerifyPassword after reopen = %v", err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	r := newRegistry(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("dev-%d", i)
			_, creds, err := r.CreateThing(ctx, registry.Thing{Name: name})
			if err != nil {
				errs <- err
				return
			}
			for range 3 {
				if _, err := r.VerifyPassword(ctx, name, creds.Password); err != nil {
					errs <- err
				}
			}
			if i%2 == 0 {
				if _, err := r.ResetCredentials(ctx, name); err != nil {
					errs <- err
				}
			} else if err := r.DeleteThing(ctx, name); err != nil {
				errs <- err
			}
			if _, err := r.VerifyPassword(ctx, name, creds.Password); !errors.Is(err, registry.ErrBadCredentials) {
				errs <- fmt.Errorf("%s: old password still valid: %v", name, err)
			}
			if _, _, err := r.ListThings(ctx, registry.ListOptions{Limit: 3}); err != nil {
				errs <- err
			}
		}()
	}
	// Racing creates of one name: exactly one wins.
	var created sync.Map
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := r.CreateThing(ctx, registry.Thing{Name: "contested"})
			switch {
			case err == nil:
				created.Store(i, true)
			case !errors.Is(err, registry.ErrExists):
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wins := 0
	created.Range(func(any, any) bool { wins++; return true })
	if wins != 1 {
		t.Errorf("%d creates of the same name succeeded", wins)
	}
}

// failingStore makes every call fail with a storage error.
type failingStore struct{ registry.Store }

var errDisk = errors.New("disk on fire")

func (failingStore) Password(context.Context, string) (registry.Thing, []byte, error) {
	return registry.Thing{}, nil, errDisk
}

func TestVerifyStorageErrorIsNotBadCredentials(t *testing.T) {
	r, err := registry.NewWithStore(failingStore{}, registry.Options{HashCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.VerifyPassword(context.Background(), "dev", "secret")
	if !errors.Is(err, errDisk) || errors.Is(err, registry.ErrBadCredentials) {
		t.Errorf("VerifyPassword = %v, want the storage error", err)
	}
}

func TestNewOptions(t *testing.T) {
	for _, cost := range []int{1, 3, 32} {
		if _, err := registry.NewWithStore(failingStore{}, registry.Options{HashCost: cost}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("HashCost %d: %v", cost, err)
		}
	}
	if _, err := registry.NewWithStore(nil, registry.Options{}); err == nil {
		t.Error("nil store accepted")
	}
}
