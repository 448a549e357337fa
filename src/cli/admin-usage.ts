/** Usage of the commands in admin.ts, apart so that `svcpath --help` does not load the database code. */
export const ADMIN_USAGE = `  svcpath token create --name NAME --scope read|write|admin [--scope …] [--cluster PATTERN …] [--json]
  svcpath token list [--json]
  svcpath token revoke ID|NAME
               API tokens, on the server's host (DATABASE_URL, or the embedded database in
               SVCPATH_DATA_DIR). The secret is printed once; clusters default to every cluster ('*').

  svcpath prune [--dry-run] [--keep N] [--days D] [--json]
               deletes the snapshots SVCPATH_RETENTION (or --keep/--days) lets go, never a cluster's
               latest; --dry-run lists them only
`;
