//! `postern export …` and `postern purge …`: data-subject requests (issue 11). Export writes
//! the archive of everything about a person, domain or managed address; purge deletes it,
//! asking first on a terminal and refusing without one unless `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::accounts::Target;
use super::error::CliError;
use super::runtime;
use crate::clock::Clock;
use crate::data_requests::selector::SelectorSpec;
use crate::data_requests::{DataRequests, Selector, TableCount};
use crate::store::PurgeScope;

/// Who the request is about: exactly one of --email, --domain, --address.
#[derive(Debug, Args)]
pub(super) struct SelectorArgs {
    /// A person's address: everything where it is sender, recipient or header From.
    #[arg(long, value_name = "ADDRESS")]
    email: Option<String>,
    /// Every address at this domain, e.g. example.com.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// A managed inbound address: the mail it received and the mail sent from it.
    #[arg(long, value_name = "ADDRESS")]
    address: Option<String>,
    /// Only messages from this time on (YYYY-MM-DD or RFC 3339, UTC when a day).
    #[arg(long, value_name = "DATE")]
    since: Option<String>,
    /// Only messages before this time (YYYY-MM-DD or RFC 3339).
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    selector: SelectorArgs,
    /// Where to write the tar archive (created 0600; an existing file is refused).
    #[arg(long, short, value_name = "FILE", required_unless_present = "dry_run")]
    output: Option<PathBuf>,
    /// Only count what the archive would hold.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub(super) struct PurgeArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    selector: SelectorArgs,
    /// Also delete the subject's suppression-list rows (mail to them is then attempted again).
    #[arg(long)]
    include_suppressions: bool,
    /// Also delete outbound mail still queued for delivery (it is then never sent).
    #[arg(long)]
    include_queued: bool,
    /// Only count what would be deleted.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long)]
    yes: bool,
}

impl SelectorArgs {
    fn parse(self) -> Result<Selector, CliError> {
        let spec = SelectorSpec {
            email: self.email,
            domain: self.domain,
            address: self.address,
            since: self.since,
            until: self.until,
        };
        Selector::parse(&spec).map_err(|error| CliError::usage(error.to_string()))
    }
}

fn open(target: &Target) -> Result<DataRequests, CliError> {
    let (store, _) = target.store_and(|_| ())?;
    Ok(DataRequests::new(store, Clock::system()))
}

fn print_counts(verb: &str, counts: &[TableCount]) {
    println!("{verb}:");
    for count in counts {
        println!("  {:<22} {}", count.table, count.rows);
    }
}

pub(super) fn export(args: ExportArgs) -> anyhow::Result<()> {
    let selector = args.selector.parse()?;
    let requests = open(&args.target)?;
    let Some(output) = args.output.filter(|_| !args.dry_run) else {
        let counts = runtime().block_on(requests.count(&selector, PurgeScope::ALL))?;
        print_counts("an export would hold (dry run)", &counts);
        return Ok(());
    };
    let file = create_new(&output)?;
    let mut out = std::io::BufWriter::new(file);
    let counts = runtime().block_on(requests.export(&selector, &mut out))?;
    out.flush()
        .with_context(|| format!("cannot write {}", output.display()))?;
    print_counts(&format!("wrote {}", output.display()), &counts);
    Ok(())
}

fn create_new(path: &std::path::Path) -> Result<std::fs::File, CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| {
            CliError::usage(format!(
                "cannot create {}: {error} (choose a new file name)",
                path.display()
            ))
        })
}

pub(super) fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let selector = args.selector.parse()?;
    let requests = open(&args.target)?;
    let scope = PurgeScope {
        suppressions: args.include_suppressions,
        queued: args.include_queued,
    };
    runtime().block_on(async move {
        let counts = requests.count(&selector, scope).await?;
        if args.dry_run {
            print_counts("a purge would delete (dry run)", &counts);
            return Ok(());
        }
        if !args.yes {
            confirm(&counts)?;
        }
        let counts = requests.purge(&selector, scope, "cli".into()).await?;
        print_counts("purged", &counts);
        Ok(())
    })
}

/// Asks on a terminal; without one, `--yes` is the only way.
fn confirm(counts: &[TableCount]) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "purge deletes data for good and standard input is not a terminal; \
             check with --dry-run, then pass --yes",
        )
        .into());
    }
    print_counts("this deletes, for good", counts);
    print!("type yes to purge: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        bail!("not purged (the answer was not yes)");
    }
    Ok(())
}
