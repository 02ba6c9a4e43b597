//! The table builder's settings, from its environment (the template's Lambda variables).

use intraday_runtime::env::required;

use crate::TableBuilderError;

pub struct Config {
    pub job_table: String,
}

impl Config {
    pub fn from_env() -> Result<Self, TableBuilderError> {
        Ok(Self {
            job_table: required(
                "INTRADAY_JOB_TABLE",
                "it names the job table (stack output JobTableName)",
            )?,
        })
    }
}
