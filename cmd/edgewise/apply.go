package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/apiclient"
	"github.com/edgewise-iot/edgewise/internal/apply"
)

func newApplyCmd() *cobra.Command {
	var file, certsDir string
	var prune, dryRun, autoApprove bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the fleet match a fleet file (types, groups, things, policies, certificates, rules)",
		Long: `Prints the plan (+ create, ~ update, - delete), asks for confirmation when stdin is a
terminal (or needs --auto-approve), then applies it. --prune deletes what the file's sections no
longer declare. New things' MQTT credentials and issued certificates (with their private keys)
are written under --certs-dir/THING/, never printed. See docs/fleet.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError(errors.New("give the fleet file with -f FILE (- for stdin)"))
			}
			var body []byte
			var err error
			if file == "-" {
				body, err = io.ReadAll(cmd.InOrStdin())
			} else {
				body, err = os.ReadFile(file)
			}
			if err != nil {
				return usageError(fmt.Errorf("read fleet file: %w", err))
			}
			// Check the file locally first: syntax errors need no server.
			if _, err := apply.Parse(body); err != nil {
				return usageError(err)
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			req := map[string]any{"file": string(body), "prune": prune, "dry_run": true}
			var plan apply.Result
			if err := c.Do(cmd.Context(), http.MethodPost, "/api/v1/apply", req, &plan); err != nil {
				return err
			}
			if len(plan.Changes) == 0 {
				fmt.Fprintln(out, "No changes. The fleet matches the file.")
				return nil
			}
			printPlan(out, plan)
			secrets := false
			for _, ch := range plan.Changes {
				if ch.Action == "create" && (ch.Kind == "thing" || ch.Kind == "certificate") {
					secrets = true
				}
			}
			if dryRun {
				return nil
			}
			if secrets && certsDir == "" {
				return usageError(errors.New("the plan creates things or certificates whose secrets are shown only once: give --certs-dir DIR to keep them"))
			}
			if !autoApprove {
				if !stdinIsTerminal(cmd) {
					return usageError(errors.New("stdin is not a terminal: pass --auto-approve to apply without confirmation"))
				}
				fmt.Fprint(out, "\nApply these changes? Only 'yes' is accepted: ")
				line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					return fmt.Errorf("apply cancelled")
				}
			}
			req["dry_run"], req["fingerprint"] = false, plan.Fingerprint
			res, err := postApply(cmd, c, req)
			if res != nil {
				// Keep the secrets of whatever was created, even when a
				// later step failed.
				if werr := writeSecrets(certsDir, *res); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\nApplied %d changes.", res.Done)
			if certsDir != "" && (len(res.Credentials) > 0 || len(res.Certificates) > 0) {
				fmt.Fprintf(out, " Secrets written under %s.", certsDir)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "fleet file (YAML; - for stdin)")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete what the file's sections no longer declare")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and stop")
	cmd.Flags().BoolVar(&autoApprove, "auto-approve", false, "apply without asking")
	cmd.Flags().StringVar(&certsDir, "certs-dir", "", "directory for new things' credentials and issued certificates")
	return cmd
}

// postApply sends an apply request and returns the result, also when the
// server stopped part way (HTTP 422 carries the partial result).
func postApply(cmd *cobra.Command, c *apiclient.Client, req map[string]any) (*apply.Result, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, c.BaseURL+"/api/v1/apply", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read apply answer: %w", err)
	}
	var body struct {
		apply.Result
		Err     *struct{ Code, Message string } `json:"error"`
		Partial *apply.Result                   `json:"result"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return &body.Result, nil
	case body.Partial != nil:
		return body.Partial, fmt.Errorf("apply stopped after %d of %d changes: %s (fix the cause and apply again; steps done stay done)",
			body.Partial.Done, len(body.Partial.Changes), body.Partial.Error)
	case body.Err != nil:
		return nil, &apiclient.Error{Status: resp.StatusCode, Code: body.Err.Code, Message: body.Err.Message}
	}
	return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
}

func printPlan(out io.Writer, plan apply.Result) {
	counts := map[string]int{}
	for _, ch := range plan.Changes {
		fmt.Fprintln(out, ch.String())
		counts[ch.Action]++
	}
	fmt.Fprintf(out, "\nPlan: %d to create, %d to update, %d to delete.\n", counts["create"], counts["update"], counts["delete"])
}

// writeSecrets stores each new thing's credentials and each issued
// certificate under dir/THING/ with owner-only permissions.
func writeSecrets(dir string, res apply.Result) error {
	if dir == "" {
		return nil
	}
	write := func(thing, name, data string) error {
		d := filepath.Join(dir, thing)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("certs dir: %w", err)
		}
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o600); err != nil {
			return fmt.Errorf("certs dir: %w", err)
		}
		return nil
	}
	for _, c := range res.Credentials {
		if err := write(c.Username, "credentials.json", fmt.Sprintf("{\"username\": %q, \"password\": %q}\n", c.Username, c.Password)); err != nil {
			return err
		}
	}
	for _, c := range res.Certificates {
		for name, data := range map[string]string{"cert.pem": c.CertPEM, "key.pem": c.KeyPEM, "ca.pem": c.CAPEM} {
			if err := write(c.Thing, name, data); err != nil {
				return err
			}
		}
		if err := write(c.Thing, "certificate-id", c.ID+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// stdinIsTerminal reports whether the command's input is a terminal.
func stdinIsTerminal(cmd *cobra.Command) bool {
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newExportCmd() *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the fleet (types, groups, things, policies, certificate states, rules) as a fleet file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage // the YAML, verbatim
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/export", nil, &raw); err != nil {
				return err
			}
			if outFile == "" || outFile == "-" {
				_, err = cmd.OutOrStdout().Write(raw)
				return err
			}
			return os.WriteFile(outFile, raw, 0o600)
		},
	}
	cmd.Flags().StringVarP(&outFile, "output", "o", "", "write to this file instead of stdout")
	return cmd
}
