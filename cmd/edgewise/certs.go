package main

import (
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/apiclient"
	"github.com/edgewise-iot/edgewise/internal/pki"
)

func newCertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Manage device X.509 certificates (issued by the platform CA or registered)",
	}
	cmd.AddCommand(newCertsCreateCmd(), newCertsSignCSRCmd(), newCertsListCmd(), newCertsGetCmd(),
		newCertsStatusCmd("revoke", pki.StatusRevoked, "Revoke a certificate (final; its connections are dropped)"),
		newCertsStatusCmd("deactivate", pki.StatusInactive, "Deactivate a certificate (its connections are dropped)"),
		newCertsStatusCmd("activate", pki.StatusActive, "Activate an inactive certificate"),
		newCertsAttachCmd(true), newCertsAttachCmd(false), newCertsDeleteCmd())
	return cmd
}

// writeCertFiles writes cert.pem, key.pem (0600, when there is a key) and
// ca.pem into dir.
func writeCertFiles(dir string, c apiclient.Certificate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{{"cert.pem", c.CertificatePEM, 0o644}, {"ca.pem", c.CAPEM, 0o644}, {"key.pem", c.PrivateKeyPEM, 0o600}}
	for _, f := range files {
		if f.data == "" {
			continue
		}
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil { // an existing file keeps its mode otherwise
			return err
		}
	}
	return nil
}

func newCertsCreateCmd() *cobra.Command {
	var out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create THING --out DIR",
		Short: "Issue a key pair and certificate for THING, attach it, and write cert.pem, key.pem and ca.pem",
		Long: "Issue a key pair and certificate signed by the platform CA, attach it to THING and write\n" +
			"DIR/cert.pem, DIR/key.pem (mode 0600; the key is not kept by the server) and DIR/ca.pem\n" +
			"(the CA that signed the server and device certificates). Prints the certificate id.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError(fmt.Errorf("--out DIR is required (the private key is shown only once)"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cert, err := c.CreateCertificate(cmd.Context(), args[0], "")
			if err != nil {
				return err
			}
			if err := writeCertFiles(out, cert); err != nil {
				return fmt.Errorf("certificate %s was created but the files could not be written: %w", cert.ID, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), map[string]any{"id": cert.ID, "thing": args[0], "dir": out})
			}
			fmt.Fprintln(cmd.OutOrStdout(), cert.ID)
			fmt.Fprintf(cmd.ErrOrStderr(), "Certificate attached to %s; wrote %s, %s (private key, 0600) and %s.\n", args[0],
				filepath.Join(out, "cert.pem"), filepath.Join(out, "key.pem"), filepath.Join(out, "ca.pem"))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory for cert.pem, key.pem and ca.pem")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newCertsSignCSRCmd() *cobra.Command {
	var csr, out string
	cmd := &cobra.Command{
		Use:   "sign-csr THING --csr FILE",
		Short: "Sign a certificate signing request for a device that keeps its own key, and attach it to THING",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if csr == "" {
				return usageError(fmt.Errorf("--csr FILE is required"))
			}
			b, err := os.ReadFile(csr)
			if err != nil {
				return err
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cert, err := c.CreateCertificate(cmd.Context(), args[0], string(b))
			if err != nil {
				return err
			}
			if out != "" {
				if err := writeCertFiles(out, cert); err != nil {
					return err
				}
			} else {
				fmt.Fprint(cmd.ErrOrStderr(), cert.CertificatePEM)
			}
			fmt.Fprintln(cmd.OutOrStdout(), cert.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&csr, "csr", "", "PEM certificate signing request")
	cmd.Flags().StringVar(&out, "out", "", "directory for cert.pem and ca.pem (default: print the certificate)")
	return cmd
}

func newCertsListCmd() *cobra.Command {
	var thing, status string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := pki.ListOptions{Thing: thing, Limit: 1000}
			if status != "" {
				st, err := pki.ParseStatus(status)
				if err != nil {
					return usageError(err)
				}
				o.Status = st
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			all := []apiclient.Certificate{}
			for {
				page, next, err := c.ListCertificates(cmd.Context(), o)
				if err != nil {
					return err
				}
				all = append(all, page...)
				if next == "" {
					break
				}
				o.After = next
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), all)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tTHINGS\tSUBJECT\tNOT AFTER")
			for _, ct := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ct.ID, ct.Status, dash(joinComma(ct.Things)), ct.Subject, ct.NotAfter.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&thing, "thing", "", "only certificates attached to this thing")
	cmd.Flags().StringVar(&status, "status", "", "only ACTIVE, INACTIVE or REVOKED certificates")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func newCertsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one certificate as JSON (with its PEM)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cert, err := c.Certificate(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), cert)
		},
	}
}

func newCertsStatusCmd(use string, st pki.Status, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cert, err := c.SetCertificateStatus(cmd.Context(), args[0], st)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Certificate %s is %s.\n", cert.ID, cert.Status)
			return nil
		},
	}
}

func newCertsAttachCmd(attach bool) *cobra.Command {
	use, short := "attach", "Attach a certificate to a thing"
	if !attach {
		use, short = "detach", "Detach a certificate from a thing (its connections as that thing are dropped)"
	}
	return &cobra.Command{
		Use:   use + " ID THING",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cert, err := c.AttachCertificate(cmd.Context(), args[0], args[1], attach)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Certificate %s is attached to: %s.\n", cert.ID, dash(joinComma(cert.Things)))
			return nil
		},
	}
}

func newCertsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an inactive or revoked certificate",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteCertificate(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted certificate %s.\n", args[0])
			return nil
		},
	}
}

func newCAsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cas",
		Short: "Manage certificate authorities whose device certificates may connect (bring your own CA)",
	}
	var auto bool
	reg := &cobra.Command{
		Use:   "register FILE",
		Short: "Register a PEM CA certificate; --auto-register records its device certificates on first connect",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			ca, err := c.RegisterCA(cmd.Context(), string(b), auto)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), ca.ID)
			return nil
		},
	}
	reg.Flags().BoolVar(&auto, "auto-register", false, "just-in-time registration of the certificates it signs")
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the platform CA and the registered CAs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			cas, err := c.ListCAs(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), cas)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tAUTO-REGISTER\tPLATFORM\tSUBJECT")
			for _, ca := range cas {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%v\t%s\n", ca.ID, ca.Status, ca.AutoRegister, ca.Platform, ca.Subject)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(reg, list)
	return cmd
}
