//! What every dashboard page is made of: tables, each also exported as
//! CSV and JSON, and bar charts drawn as inline SVG.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// A button in a cell: a form posted to `url` with `fields` (the CSRF
/// token is added by the page).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Action {
    /// Where the form is posted.
    pub url: String,
    /// The button's text.
    pub label: String,
    /// What the button's label says to a screen reader when the text alone
    /// is ambiguous (`Approve ws-104`).
    pub description: String,
    /// Hidden fields, in order.
    pub fields: Vec<(String, String)>,
}

/// One cell: its text, and optionally a link, a style class and buttons.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Cell {
    /// The text (what CSV and JSON export).
    pub text: String,
    /// A page it links to.
    pub link: Option<String>,
    /// A style class (`failed`, `success`...).
    pub class: Option<String>,
    /// Buttons.
    pub actions: Vec<Action>,
}

impl Cell {
    /// A cell of plain text.
    pub fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            ..Cell::default()
        }
    }

    /// A cell linking to `link`.
    pub fn link(text: impl Into<String>, link: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            link: Some(link.into()),
            ..Cell::default()
        }
    }

    /// The same cell with a style class.
    pub fn class(mut self, class: impl Into<String>) -> Cell {
        self.class = Some(class.into());
        self
    }

    /// The same cell with a button.
    pub fn action(mut self, action: Action) -> Cell {
        self.actions.push(action);
        self
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::text(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::text(text)
    }
}

/// A table of a page.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Table {
    /// Its name in export links (`?table=failures`).
    pub name: String,
    /// Its heading.
    pub title: String,
    /// Column headings.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
    /// What is shown when there is no row.
    pub empty: String,
}

impl Table {
    /// An empty table.
    pub fn new(name: &str, title: &str, columns: &[&str], empty: &str) -> Table {
        Table {
            name: name.to_owned(),
            title: title.to_owned(),
            columns: columns.iter().map(|column| (*column).to_owned()).collect(),
            rows: Vec::new(),
            empty: empty.to_owned(),
        }
    }

    /// Adds a row.
    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as CSV (RFC 4180): the headings, then each row's texts.
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns)?;
        for row in &self.rows {
            writer.write_record(row.iter().map(|cell| cell.text.as_str()))?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|error| csv::Error::from(error.into_error()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The table as JSON: an array of objects, one per row, keyed by the
    /// column headings.
    pub fn to_json(&self) -> serde_json::Value {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let object: serde_json::Map<String, serde_json::Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, cell)| (column.clone(), cell.text.clone().into()))
                    .collect();
                serde_json::Value::Object(object)
            })
            .collect();
        serde_json::Value::Array(rows)
    }
}

/// The colour of each outcome in charts (and its order in stacks).
const OUTCOME_COLOURS: &[(&str, &str)] = &[
    ("success", "#2e7d32"),
    ("success-reboot-required", "#66bb6a"),
    ("skipped", "#90a4ae"),
    ("retry", "#f9a825"),
    ("blocked", "#ef6c00"),
    ("failed", "#c62828"),
];

/// A bar chart: one bar per category, stacked by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chart {
    /// Its heading (also the SVG's accessible name).
    pub title: String,
    /// Counts per category, then per outcome.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Categories in the order drawn (when empty, sorted).
    pub order: Vec<String>,
}

impl Chart {
    /// An empty chart.
    pub fn new(title: &str) -> Chart {
        Chart {
            title: title.to_owned(),
            ..Chart::default()
        }
    }

    /// Counts one `outcome` in `category`.
    pub fn add(&mut self, category: &str, outcome: &str) {
        *self
            .counts
            .entry(category.to_owned())
            .or_default()
            .entry(outcome.to_owned())
            .or_default() += 1;
    }

    /// Makes `category` appear (with no count) in its place.
    pub fn category(&mut self, category: &str) {
        self.counts.entry(category.to_owned()).or_default();
        if !self.order.iter().any(|known| known == category) {
            self.order.push(category.to_owned());
        }
    }

    /// The chart as an SVG element: labelled bars, a legend, and a
    /// `<title>` per bar segment with its count. Every text is escaped.
    pub fn svg(&self) -> String {
        let categories: Vec<&String> = if self.order.is_empty() {
            self.counts.keys().collect()
        } else {
            self.order.iter().collect()
        };
        let highest = categories
            .iter()
            .filter_map(|category| self.counts.get(*category))
            .map(|outcomes| outcomes.values().sum::<u64>())
            .max()
            .unwrap_or(0)
            .max(1);
        let bar = 28.0_f64;
        let gap = 12.0_f64;
        let left = 40.0_f64;
        let plot_height = 160.0_f64;
        let top = 10.0_f64;
        // Room for the last category's slanted label, and for the legend.
        let legend: f64 = OUTCOME_COLOURS
            .iter()
            .map(|(outcome, _)| 24.0 + 6.0 * outcome.len() as f64)
            .sum();
        let width =
            (left + (bar + gap) * categories.len().max(1) as f64 + gap + 70.0).max(left + legend);
        let height = top + plot_height + 90.0;
        let mut svg = String::new();
        let _ = write!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{title}\" \
             width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
             <title>{title}</title>",
            title = tera::escape_html(&self.title)
        );
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#555\"/>\
             <line x1=\"{left}\" y1=\"{bottom}\" x2=\"{width:.0}\" y2=\"{bottom}\" stroke=\"#555\"/>\
             <text x=\"{label_x}\" y=\"{top_label}\" font-size=\"10\" text-anchor=\"end\">{highest}</text>\
             <text x=\"{label_x}\" y=\"{bottom}\" font-size=\"10\" text-anchor=\"end\">0</text>",
            bottom = top + plot_height,
            label_x = left - 4.0,
            top_label = top + 8.0,
        );
        for (index, category) in categories.iter().enumerate() {
            let x = left + gap + (bar + gap) * index as f64;
            let mut y = top + plot_height;
            if let Some(outcomes) = self.counts.get(*category) {
                for (outcome, colour) in OUTCOME_COLOURS {
                    let Some(count) = outcomes.get(*outcome).copied().filter(|count| *count > 0)
                    else {
                        continue;
                    };
                    let h = plot_height * count as f64 / highest as f64;
                    y -= h;
                    let _ = write!(
                        svg,
                        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar}\" height=\"{h:.1}\" fill=\"{colour}\">\
                         <title>{category}: {count} {outcome}</title></rect>",
                        category = tera::escape_html(category),
                        outcome = tera::escape_html(outcome),
                    );
                }
            }
            let _ = write!(
                svg,
                "<text transform=\"translate({tx:.1},{ty:.1}) rotate(45)\" font-size=\"10\">{label}</text>",
                tx = x + 4.0,
                ty = top + plot_height + 12.0,
                label = tera::escape_html(&shorten(category, 16)),
            );
        }
        let mut legend_x = left;
        for (outcome, colour) in OUTCOME_COLOURS {
            let _ = write!(
                svg,
                "<rect x=\"{legend_x:.0}\" y=\"{y:.0}\" width=\"9\" height=\"9\" fill=\"{colour}\"/>\
                 <text x=\"{text_x:.0}\" y=\"{text_y:.0}\" font-size=\"10\">{outcome}</text>",
                y = height - 14.0,
                text_x = legend_x + 12.0,
                text_y = height - 6.0,
            );
            legend_x += 24.0 + 6.0 * outcome.len() as f64;
        }
        svg.push_str("</svg>");
        svg
    }
}

fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(chars - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_json_keys_rows_by_column() {
        let mut table = Table::new("t", "T", &["machine", "evidence"], "none");
        table.push(vec![
            Cell::text("ws-1"),
            Cell::text("line with \"quotes\", and a comma"),
        ]);
        assert_eq!(
            table.to_csv().expect("csv"),
            "machine,evidence\nws-1,\"line with \"\"quotes\"\", and a comma\"\n"
        );
        assert_eq!(
            table.to_json(),
            serde_json::json!([{"machine": "ws-1", "evidence": "line with \"quotes\", and a comma"}])
        );
    }

    #[test]
    fn charts_escape_every_text_and_draw_one_segment_per_outcome() {
        let mut chart = Chart::new("Outcomes <by> product");
        chart.add("jre", "success");
        chart.add("jre", "failed");
        chart.add("<script>", "failed");
        let svg = chart.svg();
        assert!(svg.contains("Outcomes &lt;by&gt; product"));
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("jre: 1 failed"));
        assert!(svg.contains("jre: 1 success"));
        assert_eq!(svg.matches("<rect x=").count(), 3 + OUTCOME_COLOURS.len());
    }
}
