//! Cutting outside text to a size a condition, an Event or a log line can
//! carry. By characters, never inside one: D365 messages are often not ASCII.

use std::borrow::Cow;

/// The first `max_chars` characters of `text`.
pub fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((idx, _)) => &text[..idx],
        None => text,
    }
}

/// As [`truncate`], with `…` when something was cut, so a reader knows.
pub fn abbreviate(text: &str, max_chars: usize) -> Cow<'_, str> {
    let kept = truncate(text, max_chars);
    if kept.len() == text.len() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("{kept}…"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_characters_and_marks_the_cut() {
        let table = [
            ("", 3, "", ""),
            ("abc", 3, "abc", "abc"),
            ("abcd", 3, "abc", "abc…"),
            ("äöüß", 2, "äö", "äö…"),
            ("日本語テキスト", 3, "日本語", "日本語…"),
        ];
        for (text, max, cut, shown) in table {
            assert_eq!(truncate(text, max), cut, "{text}");
            assert_eq!(abbreviate(text, max), shown, "{text}");
        }
    }
}
