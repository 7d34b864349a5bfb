//! TEMPORARY placeholder until the cleaning module lands (replaced by the real one).
pub fn clean_prompt(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
