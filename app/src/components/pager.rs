use leptos::prelude::*;

/// "‹ Previous · Page n of m · Next ›" links for a list at `base` (`?page=n`).
#[component]
pub fn Pager(base: &'static str, page: u32, pages: u32) -> impl IntoView {
    let link = move |p: u32| format!("{base}?page={p}");
    (pages > 1).then(|| {
        view! {
            <nav class="pager" aria-label="Pages" data-testid="pager">
                {(page > 1).then(|| view! { <a class="pager-link" href=link(page - 1) rel="prev">"‹ Previous"</a> })}
                <span class="muted">{format!("Page {page} of {pages}")}</span>
                {(page < pages).then(|| view! { <a class="pager-link" href=link(page + 1) rel="next">"Next ›"</a> })}
            </nav>
        }
    })
}
