//! Runs on behalf of a session: today the user's `!shell` commands (the agent loop joins it).
//! The agent room reaches the other rooms through handles it is given; it never reaches back
//! into the HTTP layer.

pub mod shell;

use std::path::PathBuf;

use crate::policy::Policy;
use crate::session::Sessions;
use crate::tools::procs::Procs;

/// The agent room. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Agent {
    sessions: Sessions,
    policy: Policy,
    procs: Procs,
    directory: PathBuf,
    home: PathBuf,
}

impl Agent {
    /// An agent working in `directory` as the user whose home is `home`.
    pub fn new(
        sessions: Sessions,
        policy: Policy,
        procs: Procs,
        directory: PathBuf,
        home: PathBuf,
    ) -> Agent {
        Agent {
            sessions,
            policy,
            procs,
            directory,
            home,
        }
    }
}
