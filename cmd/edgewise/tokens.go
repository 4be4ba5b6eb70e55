package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/access"
)

func newTokensCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tokens", Short: "Manage API tokens (create, list, revoke); needs the admin scope"}
	var scopes []string
	var readOnly, asJSON bool
	var expires string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API token and print its secret (shown only once)",
		Long:  "Scopes: " + strings.Join(access.AllScopes, ", ") + ". --read-only gives " + strings.Join(access.ReadOnly, ", ") + ".",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if readOnly == (len(scopes) > 0) {
				return usageError(fmt.Errorf("give exactly one of --scope or --read-only"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var out struct {
				Token  access.Token `json:"token"`
				Secret string       `json:"secret"`
			}
			body := map[string]any{"name": args[0], "scopes": scopes, "read_only": readOnly, "expires_in": expires}
			if err := c.Do(cmd.Context(), http.MethodPost, "/api/v1/tokens", body, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created token %s (id %s, scopes %s).\nSecret (shown only once, keep it now):\n  %s\n",
				out.Token.Name, out.Token.ID, strings.Join(out.Token.Scopes, ","), out.Secret)
			return nil
		},
	}
	create.Flags().StringSliceVar(&scopes, "scope", nil, "scopes (comma-separated or repeated)")
	create.Flags().BoolVar(&readOnly, "read-only", false, "all read scopes and nothing else")
	create.Flags().StringVar(&expires, "expires-in", "", "lifetime, e.g. 720h (default: no expiry)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use: "list", Short: "List API tokens (never their secrets)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var all []access.Token
			next := ""
			for {
				var page struct {
					Tokens []access.Token `json:"tokens"`
					Next   string         `json:"next"`
				}
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/tokens?limit=1000&next="+url.QueryEscape(next), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Tokens...)
				if next = page.Next; next == "" {
					break
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), nonNil(all))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tSTATE\tCREATED")
			now := time.Now()
			for _, t := range all {
				state := "active"
				switch {
				case t.RevokedAt != nil:
					state = "revoked"
				case !t.Active(now):
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Scopes, ","), state, t.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke an API token at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Token %s revoked.\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func newAuditCmd() *cobra.Command {
	var limit int
	var actor, target string
	var asJSON bool
	cmd := &cobra.Command{
		Use: "audit", Short: "Show the audit log of API changes, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 || limit > 1000 {
				return usageError(fmt.Errorf("--limit must be from 1 to 1000"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var page struct {
				Entries []access.Entry `json:"entries"`
			}
			q := url.Values{"limit": {fmt.Sprint(limit)}, "actor": {actor}, "target": {target}}
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), nonNil(page.Entries))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tSTATUS\tRESULT")
			for _, e := range page.Entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.At.Format(time.RFC3339), e.Actor, e.Action, e.Target, e.Status, e.Result)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "entries to show")
	cmd.Flags().StringVar(&actor, "actor", "", "only this actor or token id")
	cmd.Flags().StringVar(&target, "target", "", "only targets starting with this path")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
