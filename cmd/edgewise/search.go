package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/fleet"
)

func newSearchCmd() *cobra.Command {
	var limit, size int
	var asJSON, count bool
	var aggField, aggType string
	cmd := &cobra.Command{
		Use:   "search QUERY",
		Short: "Search the fleet: edgewise search 'attributes.location:lab AND connected:true'",
		Long: `Search things by name, type, attributes, groups, connectivity and shadow fields.
See docs/fleet.md for the syntax. --count prints the number of matches;
--agg FIELD prints a stats (--type stats) or terms (--type terms) aggregation.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageError(fmt.Errorf("--limit must not be negative"))
			}
			c, err := clientFromCmd(cmd)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			q := url.Values{"q": {args[0]}}
			switch {
			case count:
				var r struct{ Count int }
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/search/count?"+q.Encode(), nil, &r); err != nil {
					return err
				}
				fmt.Fprintln(out, r.Count)
				return nil
			case aggField != "":
				q.Set("field", aggField)
				q.Set("type", aggType)
				q.Set("size", fmt.Sprint(size))
				var agg fleet.Aggregation
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/search/aggregate?"+q.Encode(), nil, &agg); err != nil {
					return err
				}
				return printJSON(out, agg)
			}
			var all []fleet.ThingDoc
			next := ""
			for {
				pageSize := 1000
				if limit > 0 {
					pageSize = min(limit-len(all), 1000)
				}
				q.Set("limit", fmt.Sprint(pageSize))
				q.Set("next", next)
				var page struct {
					Things []fleet.ThingDoc `json:"things"`
					Next   string           `json:"next"`
				}
				if err := c.Do(cmd.Context(), http.MethodGet, "/api/v1/search/things?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				all = append(all, page.Things...)
				if next = page.Next; next == "" || (limit > 0 && len(all) >= limit) {
					break
				}
			}
			if asJSON {
				return printJSON(out, nonNil(all))
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tCONNECTED\tGROUPS\tATTRIBUTES")
			for _, d := range all {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", d.Name, dash(d.Type), d.Connectivity.Connected, dash(strings.Join(d.Groups, ",")), attrString(d.Attributes))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many things")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&count, "count", false, "print only the number of matching things")
	cmd.Flags().StringVar(&aggField, "agg", "", "aggregate this field over the matches")
	cmd.Flags().StringVar(&aggType, "type", "stats", "aggregation type: stats or terms")
	cmd.Flags().IntVar(&size, "size", 10, "terms buckets")
	return cmd
}
