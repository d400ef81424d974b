//! `clearing`: the command-line edge. Parses arguments, wires files, buses
//! and stores to the pipeline library, and maps failures to exit codes
//! (0 success, 1 a checked condition failed, 2 usage or configuration).

mod cmd;
mod metrics;
mod serve;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "clearing",
    version,
    about = "Event-sourced clearing of electronic care sheets (FSE)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a world, run the whole pipeline on the local log, verify, summarise.
    Demo(cmd::demo::DemoArgs),
    /// Run pipeline stages as a long-lived consumer.
    Run(cmd::stream::RunArgs),
    /// Run the stages and the online services (HTTP/JSON) answered from their state.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Publish FSE JSON Lines from stdin to fse.submitted.
    Submit(cmd::stream::SubmitArgs),
    /// Publish reference data JSON Lines from stdin.
    Publish(cmd::stream::PublishArgs),
    /// Close the outbound books up to a date: batch acknowledgements, a payment run, EU claims.
    Close(cmd::stream::CloseArgs),
    /// Print a topic's events as JSON Lines.
    Read(cmd::stream::ReadArgs),
    /// Run the four stages in process over FSE JSON Lines on stdin; one decision per line on stdout.
    Adjudicate(cmd::adjudicate::AdjudicateArgs),
    /// Write a deterministic synthetic data set.
    Gen(cmd::gen_data::GenArgs),
    /// Re-run recorded inputs and compare with the recorded outputs and hash chains.
    Replay(cmd::replay::ReplayArgs),
    /// Copy a recorded run to an archive directory with a manifest.
    Archive(cmd::archive::ArchiveArgs),
    /// The decision path of one claim, stage by stage, with the arithmetic and rule versions.
    Explain(cmd::explain::ExplainArgs),
    /// Push signed claims through the pipeline at a rate or flat out; measure, compare with the raw limits, write report.json and report.html.
    Loadtest(Box<cmd::loadtest::LoadtestArgs>),
    /// Check a local log's segments for damage, or move damaged bytes aside (`check`, `repair --quarantine`).
    Log(cmd::log::LogArgs),
}

/// Turns transparent huge pages off for this process. mimalloc asks for them
/// on its arenas, and a first touch of a 2 MiB region then has the kernel
/// zero all of it where mimalloc uses a 64 KiB page: 16.6 % of a flat-out
/// run's CPU samples were `clear_page_erms`, and the RSS carried the huge
/// pages' unused parts (docs/performance.md, "Kept, and what each gave").
/// The kernel applies it to the mappings made before it too.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integers only and touches no
    // memory of ours; a kernel without it returns an error, which changes
    // nothing but the page size.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// mimalloc's collection, for the runtime to call when freed memory should
/// go back (`clearing_pipeline::allocator`).
fn collect_freed_memory(force: bool) {
    // SAFETY: mi_collect takes a flag and works on the allocator's own
    // structures; it is safe from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(force) }
}

fn main() -> ExitCode {
    without_transparent_huge_pages();
    clearing_pipeline::allocator::set_collector(collect_freed_memory);
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Run(args) => cmd::stream::run(args),
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Submit(args) => cmd::stream::submit(args),
        Command::Publish(args) => cmd::stream::publish(args),
        Command::Close(args) => cmd::stream::close(args),
        Command::Read(args) => cmd::stream::read(args),
        Command::Adjudicate(args) => cmd::adjudicate::run(args),
        Command::Gen(args) => cmd::gen_data::run(args).map(|()| ExitCode::SUCCESS),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Archive(args) => cmd::archive::run(args),
        Command::Explain(args) => cmd::explain::run(args),
        Command::Loadtest(args) => cmd::loadtest::run(*args),
        Command::Log(args) => cmd::log::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("clearing: {e:#}");
            ExitCode::from(2)
        }
    }
}
