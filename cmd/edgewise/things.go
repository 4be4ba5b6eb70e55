package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/registry"
)

func newThingsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "things",
		Short: "Manage things (devices) in the registry",
	}
	cmd.AddCommand(newThingsCreateCmd(), newThingsListCmd(), newThingsGetCmd(), newThingsDeleteCmd(),
		newThingsStateCmd(), newThingsCredentialsCmd())
	return cmd
}

func newThingsCreateCmd() *cobra.Command {
	var typ string
	var attrs []string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a thing and print its MQTT credentials (shown only once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			am := map[string]string{}
			for _, kv := range attrs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageError(fmt.Errorf("--attr %q must be KEY=VALUE", kv))
				}
				am[k] = v
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			t, creds, err := c.CreateThing(cmd.Context(), registry.Thing{Name: args[0], Type: typ, Attributes: am})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, map[string]any{"thing": t, "credentials": creds})
			}
			fmt.Fprintf(out, "Created thing %s", t.Name)
			if t.Type != "" {
				fmt.Fprintf(out, " (type %s)", t.Type)
			}
			fmt.Fprintf(out, ".\nMQTT credentials (shown only once, keep them now):\n  username: %s\n  password: %s\n", creds.Username, creds.Password)
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "thing type")
	cmd.Flags().StringArrayVar(&attrs, "attr", nil, "attribute KEY=VALUE (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newThingsListCmd() *cobra.Command {
	var typ string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List things (all pages unless --limit)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usageError(fmt.Errorf("--limit must not be negative"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var all []registry.Thing
			after := ""
			for {
				page := 1000
				if limit > 0 {
					page = min(limit-len(all), 1000)
				}
				things, next, err := c.ListThings(cmd.Context(), registry.ListOptions{Limit: page, After: after, Type: typ})
				if err != nil {
					return err
				}
				all = append(all, things...)
				if next == "" || (limit > 0 && len(all) >= limit) {
					break
				}
				after = next
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if all == nil {
					all = []registry.Thing{}
				}
				return printJSON(out, all)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tATTRIBUTES\tCREATED")
			for _, t := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, dash(t.Type), attrString(t.Attributes), t.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "only things of this type")
	cmd.Flags().IntVar(&limit, "limit", 0, "list at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newThingsGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one thing as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			t, err := c.GetThing(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), t)
		},
	}
}

func newThingsDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a thing (its credentials stop working at once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteThing(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted thing %s.\n", args[0])
			return nil
		},
	}
}

func newThingsStateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "state NAME",
		Short: "Show the thing's last reported state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			raw, err := c.State(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), v)
		},
	}
}

func newThingsCredentialsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "credentials NAME",
		Short: "Issue a new MQTT password for the thing (the old one stops working)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			creds, err := c.ResetCredentials(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New MQTT credentials (shown only once):\n  username: %s\n  password: %s\n", creds.Username, creds.Password)
			return nil
		},
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func attrString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}
