package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/edgewise-iot/edgewise/internal/pki"
	"github.com/edgewise-iot/edgewise/internal/policy"
)

// Certificate is a certificate as the API returns it; PrivateKeyPEM is set
// only in the answer that created the key.
type Certificate struct {
	pki.Certificate
	CertificatePEM string `json:"certificate_pem"`
	PrivateKeyPEM  string `json:"private_key_pem,omitempty"`
	CAPEM          string `json:"ca_pem,omitempty"`
}

// CA is a registered certificate authority.
type CA struct {
	pki.CA
	CertificatePEM string `json:"certificate_pem"`
}

// CreateCertificate issues a key pair and certificate for thing (csr
// empty) or signs csr, attaching the certificate to thing.
func (c *Client) CreateCertificate(ctx context.Context, thing, csr string) (Certificate, error) {
	var out Certificate
	err := c.do(ctx, http.MethodPost, "/api/v1/certificates", map[string]string{"thing": thing, "csr": csr}, &out)
	return out, err
}

// Certificate returns one certificate.
func (c *Client) Certificate(ctx context.Context, id string) (Certificate, error) {
	var out Certificate
	err := c.do(ctx, http.MethodGet, "/api/v1/certificates/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ListCertificates returns a page of certificates and the next cursor.
func (c *Client) ListCertificates(ctx context.Context, o pki.ListOptions) ([]Certificate, string, error) {
	q := url.Values{}
	for k, v := range map[string]string{"thing": o.Thing, "status": string(o.Status), "after": o.After, "ca": o.CAID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	var out struct {
		Certificates []Certificate `json:"certificates"`
		Next         string        `json:"next"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/certificates?"+q.Encode(), nil, &out)
	return out.Certificates, out.Next, err
}

// SetCertificateStatus activates, deactivates or revokes a certificate.
func (c *Client) SetCertificateStatus(ctx context.Context, id string, s pki.Status) (Certificate, error) {
	var out Certificate
	err := c.do(ctx, http.MethodPatch, "/api/v1/certificates/"+url.PathEscape(id), map[string]string{"status": string(s)}, &out)
	return out, err
}

// DeleteCertificate deletes a certificate that is not ACTIVE.
func (c *Client) DeleteCertificate(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/certificates/"+url.PathEscape(id), nil, nil)
}

// AttachCertificate attaches (attach true) or detaches a certificate and a thing.
func (c *Client) AttachCertificate(ctx context.Context, id, thing string, attach bool) (Certificate, error) {
	m := http.MethodPost
	if !attach {
		m = http.MethodDelete
	}
	var out Certificate
	err := c.do(ctx, m, "/api/v1/certificates/"+url.PathEscape(id)+"/things/"+url.PathEscape(thing), nil, &out)
	return out, err
}

// RegisterCA registers an external CA.
func (c *Client) RegisterCA(ctx context.Context, certPEM string, autoRegister bool) (CA, error) {
	var out CA
	err := c.do(ctx, http.MethodPost, "/api/v1/cas", map[string]any{"certificate_pem": certPEM, "auto_register": autoRegister}, &out)
	return out, err
}

// ListCAs lists the platform CA and the registered CAs.
func (c *Client) ListCAs(ctx context.Context) ([]CA, error) {
	var out struct {
		CAs []CA `json:"cas"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/cas", nil, &out)
	return out.CAs, err
}

// Policy is a stored policy with its targets.
type Policy struct {
	Name     string          `json:"name"`
	Document json.RawMessage `json:"document"`
	Version  int             `json:"version"`
	Targets  []policy.Target `json:"targets"`
}

// CreatePolicy stores a policy document.
func (c *Client) CreatePolicy(ctx context.Context, name string, doc json.RawMessage) (Policy, error) {
	var out Policy
	err := c.do(ctx, http.MethodPost, "/api/v1/policies", map[string]any{"name": name, "document": doc}, &out)
	return out, err
}

// Policy returns one policy.
func (c *Client) Policy(ctx context.Context, name string) (Policy, error) {
	var out Policy
	err := c.do(ctx, http.MethodGet, "/api/v1/policies/"+url.PathEscape(name), nil, &out)
	return out, err
}

// ListPolicies returns every policy.
func (c *Client) ListPolicies(ctx context.Context) ([]Policy, error) {
	var all []Policy
	after := ""
	for {
		var out struct {
			Policies []Policy `json:"policies"`
			Next     string   `json:"next"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/policies?limit=1000&after="+url.QueryEscape(after), nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Policies...)
		if out.Next == "" {
			return all, nil
		}
		after = out.Next
	}
}

// DeletePolicy deletes a policy attached to nothing.
func (c *Client) DeletePolicy(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/policies/"+url.PathEscape(name), nil, nil)
}

// AttachPolicy attaches (attach true) or detaches a policy and a target.
func (c *Client) AttachPolicy(ctx context.Context, name string, t policy.Target, attach bool) (Policy, error) {
	var out Policy
	path := "/api/v1/policies/" + url.PathEscape(name) + "/targets"
	if attach {
		return out, c.do(ctx, http.MethodPost, path, t, &out)
	}
	q := url.Values{"kind": {t.Kind}, "name": {t.Name}}
	return out, c.do(ctx, http.MethodDelete, path+"?"+q.Encode(), nil, &out)
}
