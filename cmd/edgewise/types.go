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

func newTypesCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "types", Short: "Manage thing types (create, list, get, deprecate, undeprecate, delete)"}
	var desc string
	var searchable []string
	var asJSON bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Register a thing type", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var t registry.ThingType
			body := map[string]any{"name": args[0], "description": desc, "searchable_attributes": searchable}
			if err := c.Do(cmd.Context(), http.MethodPost, "/api/v1/thing-types", body, &t); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created thing type %s.\n", t.Name)
			return nil
		},
	}
	create.Flags().StringVar(&desc, "description", "", "description")
	create.Flags().StringSliceVar(&searchable, "searchable", nil, "searchable attribute names (comma-separated)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	list := &cobra.Command{
		Use: "list", Short: "List thing types", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var all []registry.ThingType
			next := ""
			for {
				var page struct {
					Types []registry.ThingType `json:"thing_types"`
					Next  string               `json:"next"`
				}
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/thing-types?limit=1000&next="+url.QueryEscape(next), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Types...)
				if next = page.Next; next == "" {
					break
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), nonNil(all))
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDEPRECATED\tSEARCHABLE\tDESCRIPTION")
			for _, t := range all {
				fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", t.Name, t.Deprecated, dash(strings.Join(t.SearchableAttributes, ",")), dash(t.Description))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	get := &cobra.Command{
		Use: "get NAME", Short: "Show a thing type as JSON", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			var t registry.ThingType
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/thing-types/"+url.PathEscape(args[0]), nil, &t); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), t)
		},
	}
	simple := func(use, short, method, suffix, done string) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := clientFromCmd(cmd)
				if err != nil {
					return err
				}
				if err := c.Do(cmd.Context(), method, "/api/v1/thing-types/"+url.PathEscape(args[0])+suffix, nil, nil); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Thing type %s %s.\n", args[0], done)
				return nil
			},
		}
	}
	cmd.AddCommand(create, list, get,
		simple("deprecate", "Deprecate a thing type (it accepts no new things)", http.MethodPost, "/deprecate", "deprecated"),
		simple("undeprecate", "Undeprecate a thing type", http.MethodPost, "/undeprecate", "undeprecated"),
		simple("delete", "Delete a deprecated, unused thing type", http.MethodDelete, "", "deleted"))
	return cmd
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
