//! Who is signed in, shared by every page: the header's user menu, the presets, the
//! recorder and the History and Library pages.

use crate::{api, models::User};
use leptos::prelude::*;

/// Which form the sign-in dialog shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    SignIn,
    SignUp,
}

/// The page-wide account state, created once in [`crate::App`].
#[derive(Clone, Copy)]
pub struct Account {
    /// The signed-in user (`Ok(None)` for a guest); fetched during SSR from the cookie.
    pub user: Resource<Result<Option<User>, crate::error::FnError>>,
    /// Bumped on sign-in and sign-out; lists keyed on it refetch.
    pub version: RwSignal<u64>,
    /// The sign-in dialog, when open.
    pub dialog: RwSignal<Option<AuthMode>>,
}

impl Account {
    pub fn new() -> Self {
        let version = RwSignal::new(0u64);
        Self {
            user: Resource::new(move || version.get(), |_| api::current_user()),
            version,
            dialog: RwSignal::new(None),
        }
    }

    /// Refetches the user and everything keyed on [`Account::version`].
    pub fn changed(&self) {
        self.version.update(|v| *v += 1);
    }

    /// The user as last fetched (tracked; `None` while loading or for a guest).
    pub fn current(&self) -> Option<User> {
        self.user.get().and_then(|r| r.ok()).flatten()
    }

    /// The same without tracking (for event handlers).
    pub fn current_untracked(&self) -> Option<User> {
        self.user.get_untracked().and_then(|r| r.ok()).flatten()
    }
}

impl Default for Account {
    fn default() -> Self {
        Self::new()
    }
}

/// The sign-in / sign-up dialog.
#[component]
pub fn AuthDialog() -> impl IntoView {
    let account = expect_context::<Account>();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let mode = move || account.dialog.get().unwrap_or(AuthMode::SignIn);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let (u, p, m) = (
            username.get_untracked().trim().to_owned(),
            password.get_untracked(),
            mode(),
        );
        pending.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let result = match m {
                AuthMode::SignIn => api::login(u, p).await,
                AuthMode::SignUp => api::register(u, p).await,
            };
            pending.set(false);
            match result {
                Ok(_) => {
                    password.set(String::new());
                    account.dialog.set(None);
                    account.changed();
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    view! {
        <Show when=move || account.dialog.get().is_some()>
            <div class="modal-backdrop" on:click=move |_| account.dialog.set(None)></div>
            <div class="modal" role="dialog" aria-modal="true" aria-labelledby="auth-title" data-testid="auth-dialog">
                <h2 id="auth-title" class="panel-title">
                    {move || if mode() == AuthMode::SignIn { "Sign in" } else { "Create an account" }}
                </h2>
                <form class="auth-form" on:submit=on_submit>
                    <label class="field">
                        <span class="field-label">"Username"</span>
                        <input
                            class="text-input"
                            data-testid="auth-username"
                            autocomplete="username"
                            required
                            maxlength="32"
                            prop:value=move || username.get()
                            on:input=move |ev| username.set(event_target_value(&ev))
                        />
                    </label>
                    <label class="field">
                        <span class="field-label">"Password"</span>
                        <input
                            class="text-input"
                            type="password"
                            data-testid="auth-password"
                            autocomplete=move || if mode() == AuthMode::SignIn { "current-password" } else { "new-password" }
                            required
                            prop:value=move || password.get()
                            on:input=move |ev| password.set(event_target_value(&ev))
                        />
                    </label>
                    <Show when=move || mode() == AuthMode::SignUp>
                        <p class="muted small">"3–32 letters, digits, '_', '.', '-'; a password of at least 8 characters."</p>
                    </Show>
                    {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="auth-error">{e}</p> })}
                    <div class="modal-actions">
                        <button type="submit" class="primary" data-testid="auth-submit" disabled=move || pending.get()>
                            {move || match (mode(), pending.get()) {
                                (_, true) => "Please wait…",
                                (AuthMode::SignIn, false) => "Sign in",
                                (AuthMode::SignUp, false) => "Sign up",
                            }}
                        </button>
                        <button
                            type="button"
                            class="link-button"
                            data-testid="auth-switch"
                            on:click=move |_| {
                                error.set(None);
                                account.dialog.set(Some(if mode() == AuthMode::SignIn { AuthMode::SignUp } else { AuthMode::SignIn }));
                            }
                        >
                            {move || if mode() == AuthMode::SignIn { "No account? Sign up" } else { "Have an account? Sign in" }}
                        </button>
                        <button type="button" class="secondary" on:click=move |_| account.dialog.set(None)>"Cancel"</button>
                    </div>
                </form>
            </div>
        </Show>
    }
}

/// The header's account corner: sign-in buttons for a guest, the name and sign-out for a
/// user.
#[component]
pub fn UserMenu() -> impl IntoView {
    let account = expect_context::<Account>();
    let sign_out = move |_| {
        leptos::task::spawn_local(async move {
            let _ = api::logout().await;
            account.changed();
        });
    };
    view! {
        <div class="user-menu" data-testid="user-menu">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match account.user.await {
                        Ok(Some(user)) => view! {
                            <span class="user-name" data-testid="user-name" title="Signed in">{user.username}</span>
                            <button type="button" class="secondary small" data-testid="sign-out" on:click=sign_out>"Sign out"</button>
                        }.into_any(),
                        _ => view! {
                            <button type="button" class="secondary small" data-testid="sign-in" on:click=move |_| account.dialog.set(Some(AuthMode::SignIn))>"Sign in"</button>
                            <button type="button" class="primary small" data-testid="sign-up" on:click=move |_| account.dialog.set(Some(AuthMode::SignUp))>"Sign up"</button>
                        }.into_any(),
                    }
                })}
            </Transition>
        </div>
        <AuthDialog />
    }
}
