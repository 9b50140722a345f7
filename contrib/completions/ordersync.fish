# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ordersync_global_optspecs
    string join \n config= h/help V/version
end

function __fish_ordersync_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ordersync_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ordersync_using_subcommand
    set -l cmd (__fish_ordersync_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ordersync -n "__fish_ordersync_needs_command" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_needs_command" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_needs_command" -s V -l version -d 'Print version'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "run" -d 'Run the daemon: schedule every enabled platform until SIGTERM/SIGINT'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "check" -d 'Validate the configuration offline; exit 0, or 78 listing every error'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "sync" -d 'Bring the store up to date now (all enabled platforms, or the named ones), then exit'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "push" -d 'Drain the due outbox entries once (all enabled platforms, or the named ones), then exit'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "transition" -d 'Queue a status transition for an order (it only queues: `push` or the daemon sends it)'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "outbox" -d 'Inspect queued pushes; `outbox retry ID`, `outbox cancel ID`'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "status" -d 'Per platform: last run and when, orders stored, open orders, outbox; a failing one\'s error'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "orders" -d 'List stored orders'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "order" -d 'One order with its items, its change history and its outbox entries'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "events" -d 'The change feed, in order'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "sinks" -d 'Per sink: state, cursor, lag and last error; `sinks replay|pause|resume NAME`'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "doctor" -d 'Live check of each platform: DNS, TCP, TLS/HTTP, credentials, one page, clock skew'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "verify" -d 'Compare the store with what each platform lists now: missing, changed and extra orders'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "demo" -d 'Run the daemon against built-in simulated platforms with a throw-away database'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "migrate-store" -d 'Copy the SQLite store (daemon.database) into an empty PostgreSQL database and verify every table (rows and a content hash on both sides); exit 1 on any difference'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "generate" -d 'Print the man page or a shell completion script, or write them all under --out DIR'
complete -c ordersync -n "__fish_ordersync_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand run" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand run" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand check" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand check" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sync" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand sync" -l full -d 'Ignore the cursor: read everything since backfill_from'
complete -c ordersync -n "__fish_ordersync_using_subcommand sync" -l no-reconcile -d 'Skip the reconcile pass of open orders'
complete -c ordersync -n "__fish_ordersync_using_subcommand sync" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand push" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand push" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l tracking-number -d 'The shipment\'s tracking (AWB) number, for `shipped`' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l carrier -d 'The carrier\'s name, for `shipped`' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l reason -d 'Why, for `cancelled` or `rejected`' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l received-by -d 'Who took the parcel, for `delivered`' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l item -d 'Act on these items only (Akinon); repeat for several' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -l force -d 'Override the state machine (not the platform\'s abilities)'
complete -c ordersync -n "__fish_ordersync_using_subcommand transition" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -l state -d 'Only entries in this state (pending, in_flight, done, failed, cancelled)' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -l json -d 'One JSON document instead of the table'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -f -a "retry" -d 'Put a failed or cancelled entry back in the queue with a fresh attempt budget'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -f -a "cancel" -d 'Do not send a pending or failed entry'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and not __fish_seen_subcommand_from retry cancel help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from retry" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from cancel" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from cancel" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Put a failed or cancelled entry back in the queue with a fresh attempt budget'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "cancel" -d 'Do not send a pending or failed entry'
complete -c ordersync -n "__fish_ordersync_using_subcommand outbox; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand status" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand status" -l json -d 'One JSON document, with full RFC 3339 timestamps and the cursor'
complete -c ordersync -n "__fish_ordersync_using_subcommand status" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -l platform -d 'Only this platform\'s orders' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -l status -d 'Canonical status' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -l limit -d 'At most this many, newest first' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -l json -d 'One JSON document instead of the table'
complete -c ordersync -n "__fish_ordersync_using_subcommand orders" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand order" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand order" -l json -d 'One JSON document instead of the text'
complete -c ordersync -n "__fish_ordersync_using_subcommand order" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand events" -l after -d 'Only events with an id greater than this' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand events" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand events" -l follow -d 'Keep waiting for new events'
complete -c ordersync -n "__fish_ordersync_using_subcommand events" -l json -d 'JSON: one document, or with --follow one document per line as events arrive'
complete -c ordersync -n "__fish_ordersync_using_subcommand events" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -l json -d 'One JSON document instead of the table'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -f -a "replay" -d 'Deliver again every event of the sink\'s filter from an event id on (for a receiver that lost data); the receiver sees the same webhook-id / Nats-Msg-Id as the first time'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -f -a "pause" -d 'Stop delivering to a sink; its events wait in the database'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -f -a "resume" -d 'Deliver again to a paused sink, or to one a 410 disabled'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and not __fish_seen_subcommand_from replay pause resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from replay" -l from -d 'The first event id to deliver again (`ordersync events` lists them)' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from replay" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from replay" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from pause" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from resume" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from help" -f -a "replay" -d 'Deliver again every event of the sink\'s filter from an event id on (for a receiver that lost data); the receiver sees the same webhook-id / Nats-Msg-Id as the first time'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Stop delivering to a sink; its events wait in the database'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Deliver again to a paused sink, or to one a 410 disabled'
complete -c ordersync -n "__fish_ordersync_using_subcommand sinks; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand doctor" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand doctor" -l json -d 'JSON even on a terminal (it is the default when stdout is not a terminal)'
complete -c ordersync -n "__fish_ordersync_using_subcommand doctor" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand verify" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand verify" -l repair -d 'Write missing and changed orders through the normal write path (with their events); extra orders are reported, never deleted'
complete -c ordersync -n "__fish_ordersync_using_subcommand verify" -l json -d 'One JSON document instead of the table'
complete -c ordersync -n "__fish_ordersync_using_subcommand verify" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand demo" -l for -d 'Stop after this long (e.g. "60s"); default: until Ctrl-C' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand demo" -l orders -d 'Orders in each simulated shop' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand demo" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand demo" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand migrate-store" -l to -d 'The PostgreSQL database: postgres://USER@HOST:PORT/DBNAME, without a password' -r
complete -c ordersync -n "__fish_ordersync_using_subcommand migrate-store" -l password-file -d 'A file holding its password (default: daemon.database_password_file)' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand migrate-store" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand migrate-store" -s h -l help -d 'Print help'
complete -c ordersync -n "__fish_ordersync_using_subcommand generate" -l out -d 'Write man/ordersync.1 and completions/* under this folder' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand generate" -l config -d 'Main configuration file [default: /etc/ordersync/ordersync.toml]' -r -F
complete -c ordersync -n "__fish_ordersync_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "run" -d 'Run the daemon: schedule every enabled platform until SIGTERM/SIGINT'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "check" -d 'Validate the configuration offline; exit 0, or 78 listing every error'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "sync" -d 'Bring the store up to date now (all enabled platforms, or the named ones), then exit'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "push" -d 'Drain the due outbox entries once (all enabled platforms, or the named ones), then exit'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "transition" -d 'Queue a status transition for an order (it only queues: `push` or the daemon sends it)'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "outbox" -d 'Inspect queued pushes; `outbox retry ID`, `outbox cancel ID`'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "status" -d 'Per platform: last run and when, orders stored, open orders, outbox; a failing one\'s error'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "orders" -d 'List stored orders'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "order" -d 'One order with its items, its change history and its outbox entries'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "events" -d 'The change feed, in order'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "sinks" -d 'Per sink: state, cursor, lag and last error; `sinks replay|pause|resume NAME`'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "doctor" -d 'Live check of each platform: DNS, TCP, TLS/HTTP, credentials, one page, clock skew'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "verify" -d 'Compare the store with what each platform lists now: missing, changed and extra orders'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "demo" -d 'Run the daemon against built-in simulated platforms with a throw-away database'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "migrate-store" -d 'Copy the SQLite store (daemon.database) into an empty PostgreSQL database and verify every table (rows and a content hash on both sides); exit 1 on any difference'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "generate" -d 'Print the man page or a shell completion script, or write them all under --out DIR'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and not __fish_seen_subcommand_from run check sync push transition outbox status orders order events sinks doctor verify demo migrate-store generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "retry" -d 'Put a failed or cancelled entry back in the queue with a fresh attempt budget'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and __fish_seen_subcommand_from outbox" -f -a "cancel" -d 'Do not send a pending or failed entry'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and __fish_seen_subcommand_from sinks" -f -a "replay" -d 'Deliver again every event of the sink\'s filter from an event id on (for a receiver that lost data); the receiver sees the same webhook-id / Nats-Msg-Id as the first time'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and __fish_seen_subcommand_from sinks" -f -a "pause" -d 'Stop delivering to a sink; its events wait in the database'
complete -c ordersync -n "__fish_ordersync_using_subcommand help; and __fish_seen_subcommand_from sinks" -f -a "resume" -d 'Deliver again to a paused sink, or to one a 410 disabled'
