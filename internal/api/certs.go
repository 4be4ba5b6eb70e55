package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/edgewise-iot/edgewise/internal/pki"
)

// Certs is the PKI; *pki.Service satisfies it.
type Certs interface {
	CA() []byte
	CreateCertificate(ctx context.Context, thing string, opts pki.CreateOptions) (pki.Bundle, error)
	SignCSR(ctx context.Context, thing string, csrPEM []byte) (pki.Certificate, error)
	Get(ctx context.Context, id string) (pki.Certificate, error)
	List(ctx context.Context, o pki.ListOptions) ([]pki.Certificate, string, error)
	SetStatus(ctx context.Context, id string, s pki.Status) error
	Attach(ctx context.Context, id, thing string) error
	Detach(ctx context.Context, id, thing string) error
	Delete(ctx context.Context, id string) error
	RegisterCA(ctx context.Context, certPEM []byte, opts pki.RegisterCAOptions) (pki.CA, error)
	GetCA(ctx context.Context, id string) (pki.CA, error)
	ListCAs(ctx context.Context) ([]pki.CA, error)
	UpdateCA(ctx context.Context, id string, status pki.Status, autoRegister bool) (pki.CA, error)
}

func (a *API) certRoutes() {
	if a.opts.Certs == nil {
		return
	}
	a.handle("POST /api/v1/certificates", a.certsErr(a.createCertificate))
	a.handle("GET /api/v1/certificates", a.certsErr(a.listCertificates))
	a.handle("GET /api/v1/certificates/{id}", a.certsErr(a.getCertificate))
	a.handle("PATCH /api/v1/certificates/{id}", a.certsErr(a.patchCertificate))
	a.handle("DELETE /api/v1/certificates/{id}", a.certsErr(a.deleteCertificate))
	a.handle("POST /api/v1/certificates/{id}/things/{thing}", a.certsErr(a.attachCertificate))
	a.handle("DELETE /api/v1/certificates/{id}/things/{thing}", a.certsErr(a.detachCertificate))
	a.handle("POST /api/v1/cas", a.certsErr(a.registerCA))
	a.handle("GET /api/v1/cas", a.certsErr(a.listCAs))
	a.handle("GET /api/v1/cas/{id}", a.certsErr(a.getCA))
	a.handle("PATCH /api/v1/cas/{id}", a.certsErr(a.patchCA))
}

// certsErr maps the PKI's errors to HTTP errors.
func (a *API) certsErr(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, pki.ErrNotFound), errors.Is(err, pki.ErrCANotFound), errors.Is(err, pki.ErrThingNotFound):
			return notFound("%v", err)
		case errors.Is(err, pki.ErrExists):
			return &httpError{http.StatusConflict, "conflict", err.Error()}
		case errors.Is(err, pki.ErrInvalid):
			return badRequest("%v", err)
		}
		return err
	}
}

// certificateJSON is a certificate as the API shows it.
type certificateJSON struct {
	pki.Certificate
	CertificatePEM string `json:"certificate_pem"`
	PrivateKeyPEM  string `json:"private_key_pem,omitempty"` // only when created, never again
	CAPEM          string `json:"ca_pem,omitempty"`
}

func certJSON(c pki.Certificate) certificateJSON {
	if c.Things == nil {
		c.Things = []string{}
	}
	return certificateJSON{Certificate: c, CertificatePEM: string(c.PEM)}
}

func (a *API) createCertificate(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Thing         string `json:"thing"`
		CSR           string `json:"csr"`
		ValidityHours int    `json:"validity_hours"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.ValidityHours < 0 {
		return badRequest("validity_hours must not be negative")
	}
	if req.CSR != "" {
		if req.ValidityHours != 0 {
			return badRequest("validity_hours applies to generated keys only; a CSR gets the configured validity")
		}
		c, err := a.opts.Certs.SignCSR(r.Context(), req.Thing, []byte(req.CSR))
		if err != nil {
			return err
		}
		out := certJSON(c)
		out.CAPEM = string(a.opts.Certs.CA())
		writeJSON(w, http.StatusCreated, out)
		return nil
	}
	b, err := a.opts.Certs.CreateCertificate(r.Context(), req.Thing, pki.CreateOptions{Validity: hours(req.ValidityHours)})
	if err != nil {
		return err
	}
	out := certJSON(b.Certificate)
	out.PrivateKeyPEM, out.CAPEM = string(b.KeyPEM), string(b.CAPEM)
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listCertificates(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	o := pki.ListOptions{Thing: q.Get("thing"), After: q.Get("after"), CAID: q.Get("ca")}
	if s := q.Get("status"); s != "" {
		st, err := pki.ParseStatus(s)
		if err != nil {
			return badRequest("status: %v", err)
		}
		o.Status = st
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badRequest("limit %q must be a non-negative integer", s)
		}
		o.Limit = n
	}
	list, next, err := a.opts.Certs.List(r.Context(), o)
	if err != nil {
		return err
	}
	out := make([]certificateJSON, len(list))
	for i, c := range list {
		out[i] = certJSON(c)
	}
	writeJSON(w, http.StatusOK, map[string]any{"certificates": out, "next": next})
	return nil
}

func (a *API) getCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := a.opts.Certs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, certJSON(c))
	return nil
}

func (a *API) patchCertificate(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Status string `json:"status"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	st, err := pki.ParseStatus(req.Status)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := a.opts.Certs.SetStatus(r.Context(), id, st); err != nil {
		return err
	}
	return a.getCertificate(w, r)
}

func (a *API) deleteCertificate(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Certs.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) attachCertificate(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Certs.Attach(r.Context(), r.PathValue("id"), r.PathValue("thing")); err != nil {
		return err
	}
	return a.getCertificate(w, r)
}

func (a *API) detachCertificate(w http.ResponseWriter, r *http.Request) error {
	if err := a.opts.Certs.Detach(r.Context(), r.PathValue("id"), r.PathValue("thing")); err != nil {
		return err
	}
	return a.getCertificate(w, r)
}

type caJSON struct {
	pki.CA
	CertificatePEM string `json:"certificate_pem"`
}

func (a *API) registerCA(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		CertificatePEM string `json:"certificate_pem"`
		AutoRegister   bool   `json:"auto_register"`
		Status         string `json:"status"`
	}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.CertificatePEM == "" {
		return badRequest("certificate_pem is required")
	}
	opts := pki.RegisterCAOptions{AutoRegister: req.AutoRegister}
	switch req.Status {
	case "", string(pki.StatusActive):
	case string(pki.StatusInactive):
		opts.Inactive = true
	default:
		return badRequest("status %q must be ACTIVE or INACTIVE", req.Status)
	}
	ca, err := a.opts.Certs.RegisterCA(r.Context(), []byte(req.CertificatePEM), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, caJSON{ca, string(ca.PEM)})
	return nil
}

func (a *API) listCAs(w http.ResponseWriter, r *http.Request) error {
	cas, err := a.opts.Certs.ListCAs(r.Context())
	if err != nil {
		return err
	}
	out := make([]caJSON, len(cas))
	for i, ca := range cas {
		out[i] = caJSON{ca, string(ca.PEM)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"cas": out})
	return nil
}

func (a *API) getCA(w http.ResponseWriter, r *http.Request) error {
	ca, err := a.opts.Certs.GetCA(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, caJSON{ca, string(ca.PEM)})
	return nil
}

func (a *API) patchCA(w http.ResponseWriter, r *http.Request) error {
	ca, err := a.opts.Certs.GetCA(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	req := struct {
		Status       *string `json:"status"`
		AutoRegister *bool   `json:"auto_register"`
	}{}
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	st, auto := ca.Status, ca.AutoRegister
	if req.Status != nil {
		st = pki.Status(*req.Status)
	}
	if req.AutoRegister != nil {
		auto = *req.AutoRegister
	}
	if ca, err = a.opts.Certs.UpdateCA(r.Context(), ca.ID, st, auto); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, caJSON{ca, string(ca.PEM)})
	return nil
}

func hours(n int) time.Duration { return time.Duration(n) * time.Hour }
