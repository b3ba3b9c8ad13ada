//! CSV downloads (API.md section 10): UTF-8, a header row, money as the JSON writes it, times in RFC 3339,
//! RFC 4180 quoting and CRLF line ends.
//!
//! Free text that a party typed (a return's note, a deposit's reference) is guarded against spreadsheet
//! formulas: a cell starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`. Money,
//! times and ids are never altered, so a negative amount stays a number.

/// One cell of a row.
pub enum Cell<'a> {
    /// A value the server made (money, a time, an id, a count): written as it is.
    Value(&'a str),
    /// Text someone typed: guarded against formulas.
    Text(&'a str),
}

/// A CSV document being written.
pub struct Csv(String);

impl Csv {
    /// A document with its header row.
    pub fn new(header: &[&str]) -> Csv {
        let mut csv = Csv(String::new());
        csv.row(header.iter().map(|name| Cell::Value(name)));
        csv
    }

    /// Appends a row.
    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = Cell<'a>>) {
        for (i, cell) in cells.into_iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let (text, guard) = match cell {
                Cell::Value(text) => (text, false),
                Cell::Text(text) => (text, text.starts_with(['=', '+', '-', '@', '\t', '\r'])),
            };
            if guard || text.contains([',', '"', '\n', '\r']) {
                self.0.push('"');
                if guard {
                    self.0.push('\'');
                }
                self.0.push_str(&text.replace('"', "\"\""));
                self.0.push('"');
            } else {
                self.0.push_str(text);
            }
        }
        self.0.push_str("\r\n");
    }

    /// The document.
    pub fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_guarded() {
        let mut csv = Csv::new(&["id", "amount", "note"]);
        csv.row([Cell::Value("l_1"), Cell::Value("-12.50"), Cell::Text("said \"wrong, number\"")]);
        csv.row([Cell::Value("l_2"), Cell::Value("3.00"), Cell::Text("=HYPERLINK(\"x\")")]);
        csv.row([Cell::Value("l_3"), Cell::Value(""), Cell::Text("two\nlines")]);
        assert_eq!(
            csv.finish(),
            "id,amount,note\r\nl_1,-12.50,\"said \"\"wrong, number\"\"\"\r\nl_2,3.00,\"'=HYPERLINK(\"\"x\"\")\"\r\nl_3,,\"two\nlines\"\r\n"
        );
    }
}
