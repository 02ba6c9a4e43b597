//! `--output json|table`, as the AWS CLI has it: every command builds one [`Report`] and the
//! flag decides how it is printed.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// What a command says: rows for people, JSON for scripts.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub title: Option<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub json: Value,
    /// Lines printed after a table (hints, next commands); not part of the JSON.
    pub notes: Vec<String>,
    /// The exit status after printing: non-zero when the command worked but found problems
    /// (`migrate check`), so scripts can stop on them.
    pub exit_code: u8,
}

impl Report {
    pub fn new(columns: &[&str]) -> Self {
        Self {
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            ..Self::default()
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => serde_json::to_string_pretty(&self.json).unwrap_or_default(),
            Format::Table => {
                let mut out = String::new();
                if let Some(title) = &self.title {
                    out.push_str(title);
                    out.push('\n');
                }
                // An empty table says nothing a note does not say better ("… is empty").
                if !self.columns.is_empty() && (!self.rows.is_empty() || self.notes.is_empty()) {
                    out.push_str(&table(&self.columns, &self.rows));
                }
                for note in &self.notes {
                    out.push_str(note);
                    out.push('\n');
                }
                out.trim_end().to_owned()
            }
        }
    }
}

/// A plain aligned table.
pub fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(columns);
    out.push('\n');
    out.push_str(&line(
        &widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>(),
    ));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_json_is_the_data() {
        let mut r = Report::new(&["RUN", "STATUS"]);
        r.rows.push(vec![
            "scheduled-20240311-1030".into(),
            "EMR_COMPLETED".into(),
        ]);
        r.json = serde_json::json!({"runs": 1});
        assert_eq!(
            r.render(Format::Table),
            "RUN                      STATUS\n-----------------------  -------------\nscheduled-20240311-1030  EMR_COMPLETED"
        );
        assert_eq!(r.render(Format::Json), "{\n  \"runs\": 1\n}");
    }
}
