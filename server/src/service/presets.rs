//! Prompt + settings presets, per user (`presets`).

use super::{db_error, json_text, parse_json};
use app::{
    models::{ParamMap, Preset, PresetInput, PresetPatch, PromptItem},
    service::ServiceError,
};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};

/// Longest preset name, in characters.
pub const MAX_NAME: usize = 100;
/// Most prompts in one preset.
pub const MAX_PROMPTS: usize = 16;
/// Longest prompt text, in characters (the prompt field's own limit).
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Largest `params` object, serialised.
pub const MAX_PARAMS_BYTES: usize = 32 * 1024;
/// Most presets in one import.
pub const MAX_IMPORT: usize = 200;

const COLUMNS: &str = "id, name, pipeline_id, prompts, params, created_at, updated_at";

fn invalid<T>(m: impl Into<String>) -> Result<T, ServiceError> {
    Err(ServiceError::Invalid(m.into()))
}

/// A trimmed, non-empty name of at most [`MAX_NAME`] characters without control characters.
pub fn check_name(name: &str) -> Result<String, ServiceError> {
    super::check_label("name", name, MAX_NAME)
}

/// A pipeline id: 1–64 of `a–z 0–9 - _`.
pub fn check_pipeline_id(id: &str) -> Result<(), ServiceError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return invalid(format!(
            "pipeline_id {id:?} is not a pipeline id (1-64 of a-z, 0-9, '-', '_')"
        ));
    }
    Ok(())
}

/// Prompts: at most [`MAX_PROMPTS`], each at most [`MAX_PROMPT_CHARS`] long with a finite
/// weight in 0–100.
pub fn check_prompts(prompts: &[PromptItem]) -> Result<(), ServiceError> {
    if prompts.len() > MAX_PROMPTS {
        return invalid(format!("at most {MAX_PROMPTS} prompts"));
    }
    for (i, p) in prompts.iter().enumerate() {
        if p.text.chars().count() > MAX_PROMPT_CHARS {
            return invalid(format!(
                "prompts[{i}].text must be at most {MAX_PROMPT_CHARS} characters long"
            ));
        }
        if !p.weight.is_finite() || !(0.0..=100.0).contains(&p.weight) {
            return invalid(format!("prompts[{i}].weight must be between 0 and 100"));
        }
    }
    Ok(())
}

/// Parameters: a JSON object of at most [`MAX_PARAMS_BYTES`] serialised.
pub fn check_params(params: &ParamMap) -> Result<(), ServiceError> {
    if json_text(params).len() > MAX_PARAMS_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "params must be at most {MAX_PARAMS_BYTES} bytes of JSON"
        )));
    }
    Ok(())
}

/// Validates a whole preset; returns the trimmed name.
pub fn check_input(input: &PresetInput) -> Result<String, ServiceError> {
    let name = check_name(&input.name)?;
    check_pipeline_id(&input.pipeline_id)?;
    check_prompts(&input.prompts)?;
    check_params(&input.params)?;
    Ok(name)
}

fn preset(row: &SqliteRow) -> Result<Preset, ServiceError> {
    let get = |r: &SqliteRow| -> Result<_, sqlx::Error> {
        Ok((
            r.try_get::<i64, _>("id")?,
            r.try_get::<String, _>("name")?,
            r.try_get::<String, _>("pipeline_id")?,
            r.try_get::<String, _>("prompts")?,
            r.try_get::<String, _>("params")?,
            r.try_get::<String, _>("created_at")?,
            r.try_get::<String, _>("updated_at")?,
        ))
    };
    let (id, name, pipeline_id, prompts, params, created_at, updated_at) =
        get(row).map_err(db_error)?;
    Ok(Preset {
        id,
        name,
        pipeline_id,
        prompts: parse_json(&prompts, "presets.prompts")?,
        params: parse_json(&params, "presets.params")?,
        created_at,
        updated_at,
    })
}

fn conflict(name: &str) -> ServiceError {
    ServiceError::Conflict(format!("a preset named {name:?} already exists"))
}

fn not_found(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no preset {id}"))
}

/// The user's presets, by name.
pub async fn list(db: &SqlitePool, user_id: i64) -> Result<Vec<Preset>, ServiceError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM presets WHERE user_id = ? ORDER BY name COLLATE NOCASE, id"
    ))
    .bind(user_id)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    rows.iter().map(preset).collect()
}

/// One of the user's presets (another user's is a 404).
pub async fn get(db: &SqlitePool, user_id: i64, id: i64) -> Result<Preset, ServiceError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM presets WHERE id = ? AND user_id = ?"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    preset(&row)
}

async fn insert<'e, E: sqlx::SqliteExecutor<'e>>(
    db: E,
    user_id: i64,
    name: &str,
    input: &PresetInput,
) -> Result<Preset, ServiceError> {
    let row = sqlx::query(&format!(
        "INSERT INTO presets (user_id, name, pipeline_id, prompts, params) VALUES (?, ?, ?, ?, ?)
         RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(name)
    .bind(&input.pipeline_id)
    .bind(json_text(&input.prompts))
    .bind(json_text(&input.params))
    .fetch_one(db)
    .await;
    match row {
        Ok(r) => preset(&r),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(conflict(name)),
        Err(e) => Err(db_error(e)),
    }
}

/// Saves a new preset; a name the user already has is a 409.
pub async fn create(
    db: &SqlitePool,
    user_id: i64,
    input: &PresetInput,
) -> Result<Preset, ServiceError> {
    let name = check_input(input)?;
    insert(db, user_id, &name, input).await
}

/// Applies a partial update.
pub async fn update(
    db: &SqlitePool,
    user_id: i64,
    id: i64,
    patch: &PresetPatch,
) -> Result<Preset, ServiceError> {
    let current = get(db, user_id, id).await?;
    let merged = PresetInput {
        name: patch.name.clone().unwrap_or(current.name),
        pipeline_id: patch.pipeline_id.clone().unwrap_or(current.pipeline_id),
        prompts: patch.prompts.clone().unwrap_or(current.prompts),
        params: patch.params.clone().unwrap_or(current.params),
    };
    let name = check_input(&merged)?;
    let row = sqlx::query(&format!(
        "UPDATE presets SET name = ?, pipeline_id = ?, prompts = ?, params = ?
         WHERE id = ? AND user_id = ? RETURNING {COLUMNS}"
    ))
    .bind(&name)
    .bind(&merged.pipeline_id)
    .bind(json_text(&merged.prompts))
    .bind(json_text(&merged.params))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await;
    match row {
        Ok(Some(r)) => preset(&r),
        Ok(None) => Err(not_found(id)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(conflict(&name)),
        Err(e) => Err(db_error(e)),
    }
}

/// Deletes one of the user's presets.
pub async fn delete(db: &SqlitePool, user_id: i64, id: i64) -> Result<(), ServiceError> {
    let done = sqlx::query("DELETE FROM presets WHERE id = ? AND user_id = ?")
        .bind(id)
        .bind(user_id)
        .execute(db)
        .await
        .map_err(db_error)?;
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// `base`, or the first of `base (2)`, `base (3)`… not in `taken`, cut so that it stays
/// within [`MAX_NAME`].
pub fn free_name(base: &str, taken: &[String]) -> String {
    let is_taken = |n: &str| taken.iter().any(|t| t == n);
    if !is_taken(base) {
        return base.to_owned();
    }
    (2..)
        .map(|i| {
            let suffix = format!(" ({i})");
            let room = MAX_NAME - suffix.chars().count();
            let stem: String = base.chars().take(room).collect();
            format!("{}{suffix}", stem.trim_end())
        })
        .find(|n| !is_taken(n))
        .unwrap_or_else(|| base.to_owned())
}

async fn names(db: &mut sqlx::SqliteConnection, user_id: i64) -> Result<Vec<String>, ServiceError> {
    sqlx::query_scalar("SELECT name FROM presets WHERE user_id = ?")
        .bind(user_id)
        .fetch_all(db)
        .await
        .map_err(db_error)
}

/// Copies a preset as "<name> (copy)" (or the next free name).
pub async fn duplicate(db: &SqlitePool, user_id: i64, id: i64) -> Result<Preset, ServiceError> {
    let original = get(db, user_id, id).await?;
    let mut tx = db.begin().await.map_err(db_error)?;
    let taken = names(&mut tx, user_id).await?;
    let stem: String = original.name.chars().take(MAX_NAME - 7).collect();
    let name = free_name(&format!("{} (copy)", stem.trim_end()), &taken);
    let created = insert(&mut *tx, user_id, &name, &PresetInput::from(&original)).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(created)
}

/// Creates every preset of an exported file, all or none; taken names get a suffix.
pub async fn import(
    db: &SqlitePool,
    user_id: i64,
    presets: &[PresetInput],
) -> Result<Vec<Preset>, ServiceError> {
    if presets.is_empty() {
        return invalid("the file has no presets");
    }
    if presets.len() > MAX_IMPORT {
        return Err(ServiceError::TooLarge(format!(
            "at most {MAX_IMPORT} presets per import"
        )));
    }
    let mut checked = Vec::with_capacity(presets.len());
    for (i, p) in presets.iter().enumerate() {
        let name = check_input(p).map_err(|e| match e {
            ServiceError::Invalid(m) => ServiceError::Invalid(format!("preset {}: {m}", i + 1)),
            other => other,
        })?;
        checked.push(name);
    }
    let mut tx = db.begin().await.map_err(db_error)?;
    let mut taken = names(&mut tx, user_id).await?;
    let mut created = Vec::with_capacity(presets.len());
    for (p, name) in presets.iter().zip(checked) {
        let name = free_name(&name, &taken);
        created.push(insert(&mut *tx, user_id, &name, p).await?);
        taken.push(name);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_count_up_and_stay_within_the_limit() {
        let taken = vec!["A".to_owned(), "A (2)".to_owned()];
        assert_eq!(free_name("b", &taken), "b");
        assert_eq!(free_name("A", &taken), "A (3)");
        let long = "x".repeat(MAX_NAME);
        let name = free_name(&long, std::slice::from_ref(&long));
        assert_eq!(name.chars().count(), MAX_NAME);
        assert!(name.ends_with(" (2)"));
    }

    #[test]
    fn inputs_are_checked_field_by_field() {
        let ok = PresetInput {
            name: "  Sunset  ".into(),
            pipeline_id: "passthrough".into(),
            prompts: vec![PromptItem {
                text: "a sunset".into(),
                weight: 1.0,
            }],
            params: ParamMap::new(),
        };
        assert_eq!(check_input(&ok).unwrap(), "Sunset");
        let bad = |f: fn(&mut PresetInput)| {
            let mut p = ok.clone();
            f(&mut p);
            check_input(&p).unwrap_err()
        };
        assert!(matches!(
            bad(|p| p.name = " ".into()),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| p.name = "n".repeat(101)),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| p.name = "a\nb".into()),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| p.pipeline_id = "Bad Id".into()),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| p.prompts[0].weight = f64::NAN),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| p.prompts[0].text = "t".repeat(2001)),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(|p| {
                p.params
                    .insert("x".into(), serde_json::json!("y".repeat(MAX_PARAMS_BYTES)));
            }),
            ServiceError::TooLarge(_)
        ));
    }
}
