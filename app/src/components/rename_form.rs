use leptos::prelude::*;

/// An inline "new name" form: a text field bound to `draft`, Save (submits to `on_save`)
/// and Cancel (clears `editing`).
#[component]
pub fn RenameForm(
    draft: RwSignal<String>,
    editing: RwSignal<bool>,
    /// `maxlength` of the field.
    max: u32,
    /// `data-testid` of the field.
    testid: &'static str,
    on_save: Callback<()>,
) -> impl IntoView {
    view! {
        <form class="inline-form" on:submit=move |ev| { ev.prevent_default(); on_save.run(()); }>
            <input
                class="text-input"
                data-testid=testid
                maxlength=max
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
            />
            <button type="submit" class="primary small">"Save"</button>
            <button type="button" class="secondary small" on:click=move |_| editing.set(false)>"Cancel"</button>
        </form>
    }
}
