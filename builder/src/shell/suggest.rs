//! "Did you mean" for mistyped command names, so a typo costs one glance.

use clap::CommandFactory;

use super::cli::ShellLine;

/// Every command name and alias, sorted.
pub fn command_names() -> Vec<String> {
    let definitions = ShellLine::command();
    let mut names: Vec<String> = definitions
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .flat_map(|command| {
            std::iter::once(command.get_name().to_owned())
                .chain(command.get_all_aliases().map(str::to_owned))
        })
        .collect();
    names.sort();
    names
}

/// Whether `name` is a command or an alias.
pub fn is_command(name: &str) -> bool {
    command_names().iter().any(|known| known == name)
}

/// The message for an unknown command, with the closest names if any are
/// close: `unknown command 'chek'; did you mean 'check'?`.
pub fn unknown_command(name: &str) -> String {
    let close = closest(name, &command_names());
    match close.as_slice() {
        [] => format!("unknown command '{name}'; 'help' lists the commands"),
        [one] => format!("unknown command '{name}'; did you mean '{one}'?"),
        several => format!(
            "unknown command '{name}'; did you mean one of {}?",
            several
                .iter()
                .map(|candidate| format!("'{candidate}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The candidates nearest to `word`: those it starts, or those within an
/// edit distance of a third of its length (at least one).
fn closest(word: &str, candidates: &[String]) -> Vec<String> {
    let allowed = (word.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &String)> = candidates
        .iter()
        .filter_map(|candidate| {
            let distance = edit_distance(word, candidate);
            let prefix = !word.is_empty() && candidate.starts_with(word);
            (distance <= allowed || prefix).then_some((distance, candidate))
        })
        .collect();
    scored.sort();
    let best = scored.first().map(|(distance, _)| *distance);
    scored
        .into_iter()
        .filter(|(distance, _)| Some(*distance) == best)
        .map(|(_, candidate)| candidate.clone())
        .collect()
}

/// Levenshtein distance over characters, with transpositions counting one
/// (typing `chekc` for `check` is one slip).
fn edit_distance(left: &str, right: &str) -> usize {
    let left: Vec<char> = left.chars().collect();
    let right: Vec<char> = right.chars().collect();
    let mut table = vec![vec![0usize; right.len() + 1]; left.len() + 1];
    for (row, cells) in table.iter_mut().enumerate() {
        cells[0] = row;
    }
    for (column, cell) in table[0].iter_mut().enumerate() {
        *cell = column;
    }
    for row in 1..=left.len() {
        for column in 1..=right.len() {
            let substitution = usize::from(left[row - 1] != right[column - 1]);
            let mut best = (table[row - 1][column] + 1)
                .min(table[row][column - 1] + 1)
                .min(table[row - 1][column - 1] + substitution);
            if row > 1
                && column > 1
                && left[row - 1] == right[column - 2]
                && left[row - 2] == right[column - 1]
            {
                best = best.min(table[row - 2][column - 2] + 1);
            }
            table[row][column] = best;
        }
    }
    table[left.len()][right.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("check", "check"), 0);
        assert_eq!(edit_distance("chek", "check"), 1);
        assert_eq!(edit_distance("chekc", "check"), 1);
        assert_eq!(edit_distance("", "help"), 4);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            unknown_command("chek"),
            "unknown command 'chek'; did you mean 'check'?"
        );
        assert_eq!(
            unknown_command("frobnicate"),
            "unknown command 'frobnicate'; 'help' lists the commands"
        );
        assert!(is_command("quit") && is_command("check") && !is_command("chek"));
    }
}
