package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgewise-iot/edgewise/internal/config"
	"github.com/edgewise-iot/edgewise/internal/tsdb"
)

func newStorageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "storage",
		Short: "Maintain the time-series store of a stopped server",
		Args:  cobra.NoArgs,
	}
	var cfgPath string
	compact := &cobra.Command{
		Use:   "compact",
		Short: "Flush the WAL into blocks and compact every partition of every database",
		Long: `Compact opens the store of a data directory whose server is stopped, writes
everything still in the WAL to blocks, merges the blocks of each partition
into one and applies deletions, then closes it. The running server does the
same in the background; this command gives a settled store (backups, size
measurements).`,
		Example: "  edgewise storage compact --data ./data",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath, os.Getenv)
			if err != nil {
				return usageError(err)
			}
			if cmd.Flags().Changed("data") {
				cfg.DataDir, _ = cmd.Flags().GetString("data")
			}
			lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "LOCK"), os.O_RDONLY, 0)
			if err == nil {
				defer lock.Close()
				if err := flockNB(lock); err != nil {
					return fmt.Errorf("storage compact: %s is in use by a running server: %w", cfg.DataDir, err)
				}
			}
			cat, err := tsdb.OpenCatalog(cmd.Context(), tsdb.CatalogOptions{
				Dir: filepath.Join(cfg.DataDir, "tsdb"), Logger: newLogger(cfg.Log), DefaultDatabase: cfg.Storage.Database,
				DB: tsdb.Options{BlockDuration: durationOf(cfg.Storage.BlockDuration)},
			})
			if err != nil {
				return err
			}
			defer cat.Close()
			for _, info := range cat.Databases() {
				db, err := cat.DB(info.Name)
				if err != nil {
					return err
				}
				if err := db.Flush(cmd.Context()); err != nil {
					return err
				}
				n, err := db.Compact(cmd.Context())
				if err != nil {
					return err
				}
				st := db.Stats()
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d partitions compacted, %d blocks, %d values, %d bytes (%.3f bytes/value)\n",
					info.Name, n, st.Blocks, st.BlockSamples, st.BlockBytes, float64(st.BlockBytes)/float64(max(st.BlockSamples, 1)))
			}
			return cat.Close()
		},
	}
	compact.Flags().StringVar(&cfgPath, "config", "", "YAML configuration file (storage settings)")
	cmd.AddCommand(compact)
	return cmd
}

func durationOf(d config.Duration) time.Duration { return time.Duration(d) }

// flockNB takes a non-blocking exclusive lock (released when f closes).
func flockNB(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }
