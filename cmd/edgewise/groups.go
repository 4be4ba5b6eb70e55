package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/registry"
)

func newGroupsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "groups", Short: "Manage thing groups (static, nested, or dynamic by a search query)"}
	var parent, desc, query string
	var attrs []string
	var asJSON, recursive bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a static group (--parent to nest) or a dynamic group (--query)", Args: cobra.ExactArgs(1),
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
			var g registry.Group
			body := map[string]any{"name": args[0], "parent": parent, "description": desc, "attributes": am, "query": query}
			if err := c.Do(cmd.Context(), http.MethodPost, "/api/v1/thing-groups", body, &g); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), g)
			}
			kind := "static"
			if g.Dynamic() {
				kind = "dynamic"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created %s group %s.\n", kind, g.Name)
			return nil
		},
	}
	create.Flags().StringVar(&parent, "parent", "", "parent group (static groups)")
	create.Flags().StringVar(&desc, "description", "", "description")
	create.Flags().StringVar(&query, "query", "", "fleet search query (makes a dynamic group)")
	create.Flags().StringArrayVar(&attrs, "attr", nil, "attribute KEY=VALUE (repeatable)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use: "list", Short: "List groups (--parent: only its children)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var all []registry.Group
			next := ""
			for {
				var page struct {
					Groups []registry.Group `json:"thing_groups"`
					Next   string           `json:"next"`
				}
				q := url.Values{"limit": {"1000"}, "next": {next}, "parent": {parent}}
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/thing-groups?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Groups...)
				if next = page.Next; next == "" {
					break
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), nonNil(all))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPARENT\tQUERY\tDESCRIPTION")
			for _, g := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Name, dash(g.Parent), dash(g.Query), dash(g.Description))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&parent, "parent", "", "only the children of this group")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	things := &cobra.Command{
		Use: "things GROUP", Short: "List the things of a group (--recursive: with child groups)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			next := ""
			for {
				var page struct {
					Things []string `json:"things"`
					Next   string   `json:"next"`
				}
				q := url.Values{"limit": {"1000"}, "next": {next}, "recursive": {fmt.Sprint(recursive)}}
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/thing-groups/"+url.PathEscape(args[0])+"/things?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				for _, t := range page.Things {
					fmt.Fprintln(cmd.OutOrStdout(), t)
				}
				if next = page.Next; next == "" {
					return nil
				}
			}
		},
	}
	things.Flags().BoolVar(&recursive, "recursive", false, "include the things of descendant groups")

	member := func(use, short, method, done string) *cobra.Command {
		return &cobra.Command{
			Use: use + " GROUP THING...", Short: short, Args: cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := clientFromCmd(cmd)
				if err != nil {
					return err
				}
				for _, th := range args[1:] {
					if err := c.Do(cmd.Context(), method, "/api/v1/thing-groups/"+url.PathEscape(args[0])+"/things/"+url.PathEscape(th), nil, nil); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s.\n", th, done, args[0])
				}
				return nil
			},
		}
	}
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a group as JSON", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var g registry.Group
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/thing-groups/"+url.PathEscape(args[0]), nil, &g); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), g)
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a group (it must have no child groups)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), http.MethodDelete, "/api/v1/thing-groups/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Group %s deleted.\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, get, del, things,
		member("add", "Add things to a static group", http.MethodPut, "added to"),
		member("remove", "Remove things from a static group", http.MethodDelete, "removed from"))
	return cmd
}
