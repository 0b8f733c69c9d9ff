//! `wardgate user`: the console's local accounts (docs/console.md). The
//! running console sees a change at its next request and records it in the
//! audit chain.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use wardgate_console::{Role, UserStore};

/// `wardgate user` subcommands.
#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account. The password is asked for on the terminal, or read
    /// from standard input (one line) with --password-stdin.
    Add {
        /// Its name: 1-64 of a-z, 0-9, '.', '_', '-'.
        name: String,
        /// viewer (reads), operator (re-drives, monitor/enforce, reload) or
        /// admin (devices, certificates, accounts).
        #[arg(long)]
        role: String,
        /// May be shown patient identifiers (each view is recorded).
        #[arg(long)]
        patient_data: bool,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        site: crate::SiteArgs,
    },
    /// Set an account's password (its sessions end).
    Passwd {
        /// The account.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        site: crate::SiteArgs,
    },
    /// Disable an account (its sessions end).
    Disable {
        /// The account.
        name: String,
        #[command(flatten)]
        site: crate::SiteArgs,
    },
    /// Enable a disabled account.
    Enable {
        /// The account.
        name: String,
        #[command(flatten)]
        site: crate::SiteArgs,
    },
    /// List the accounts.
    List {
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        site: crate::SiteArgs,
    },
}

fn store(site: &crate::SiteArgs) -> Result<UserStore> {
    let (data_dir, _) = site.resolve()?;
    Ok(UserStore::new(&data_dir.join(wardgate_config::CONSOLE_DIR)))
}

fn password(from_stdin: bool) -> Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_owned();
        if pw.is_empty() {
            bail!("no password on standard input");
        }
        return Ok(pw);
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let again = rpassword::prompt_password("Again: ").context("reading the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

pub(crate) fn run(c: UserCommand) -> Result<ExitCode> {
    match c {
        UserCommand::Add {
            name,
            role,
            patient_data,
            password_stdin,
            site,
        } => {
            let role = Role::parse(&role)?;
            wardgate_console::users::check_name(&name)?;
            let s = store(&site)?;
            let pw = password(password_stdin)?;
            s.add(&name, role, &pw, patient_data)?;
            println!(
                "account {name} added as {}{}",
                role.as_str(),
                if patient_data {
                    ", allowed to see patient identifiers"
                } else {
                    ""
                }
            );
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            site,
        } => {
            let s = store(&site)?;
            let pw = password(password_stdin)?;
            s.passwd(&name, &pw)?;
            println!("password of {name} changed; its console sessions end");
        }
        UserCommand::Disable { name, site } => {
            store(&site)?.set_disabled(&name, true)?;
            println!("account {name} disabled; its console sessions end");
        }
        UserCommand::Enable { name, site } => {
            store(&site)?.set_disabled(&name, false)?;
            println!("account {name} enabled");
        }
        UserCommand::List { json, site } => {
            let users = store(&site)?.load()?;
            let mut o = std::io::stdout().lock();
            for a in &users.accounts {
                if json {
                    writeln!(
                        o,
                        "{}",
                        serde_json::json!({
                            "name": a.name,
                            "role": a.role.as_str(),
                            "disabled": a.disabled,
                            "patient_data": a.patient_data,
                        })
                    )?;
                } else {
                    writeln!(
                        o,
                        "{:<24} {:<9} {:<9} {}",
                        a.name,
                        a.role.as_str(),
                        if a.disabled { "disabled" } else { "active" },
                        if a.patient_data { "patient data" } else { "" }
                    )?;
                }
            }
            if users.accounts.is_empty() && !json {
                writeln!(o, "no accounts (wardgate user add NAME --role admin ...)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
