//! Chat robots as webhook targets: a DingTalk custom robot, a WeCom group robot or a Feishu/Lark
//! custom bot receives each selected event as a short message in Simplified Chinese ([`render`]),
//! signed as the vendor requires ([`sign`]), within the vendor's rate limit ([`pace`]): when
//! events come faster than the robot may be sent to, they wait and go together as one digest,
//! split only where a message would exceed the vendor's size limit. No event is dropped.
//!
//! The vendor's URL carries its credential (DingTalk's `access_token`, WeCom's `key`, the token
//! at the end of a Feishu hook) and DingTalk and Feishu robots may have a signing secret: both are
//! sealed at rest like a webhook's secret, and the subscription shows the URL with its credential
//! masked.
//!
//! Vendors answer HTTP 200 with an error code in the body (`errcode` for DingTalk and WeCom,
//! `code` for Feishu): a non-zero one is a failed attempt, retried like any other. Their
//! throttling answers (DingTalk 130101, WeCom 45009, Feishu 11232, and HTTP 429) stop sending to
//! that robot for as long as each asks (ten minutes on DingTalk, 65 seconds on WeCom, a minute on
//! Feishu or what `Retry-After` says).
//!
//! A task opened for a named person whose staff record holds a mobile number
//! (`staff.phone_changed`) @-mentions them: DingTalk by `at.atMobiles` with `@number` in the text,
//! WeCom by a text message with `mentioned_mobile_list` (its markdown cannot mention). Feishu's
//! custom bots mention only by Feishu user id, which Funnel does not hold, so its message names
//! the person. A digest mentions each person once.

pub mod pace;
pub mod render;
pub mod sign;
pub(super) mod worker;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

/// What a subscription delivers to.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Signed CloudEvents POSTed to any URL (Standard Webhooks).
    #[default]
    Webhook,
    /// A DingTalk (钉钉) custom robot: `https://oapi.dingtalk.com/robot/send?access_token=…`.
    Dingtalk,
    /// A WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`.
    Wecom,
    /// A Feishu (飞书) or Lark custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/…`.
    Feishu,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Dingtalk => "dingtalk",
            TargetKind::Wecom => "wecom",
            TargetKind::Feishu => "feishu",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            TargetKind::Webhook,
            TargetKind::Dingtalk,
            TargetKind::Wecom,
            TargetKind::Feishu,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    pub fn is_robot(self) -> bool {
        self != TargetKind::Webhook
    }

    fn vendor(self) -> &'static str {
        match self {
            TargetKind::Webhook => "webhook",
            TargetKind::Dingtalk => "DingTalk",
            TargetKind::Wecom => "WeCom",
            TargetKind::Feishu => "Feishu",
        }
    }

    fn vendor_zh(self) -> &'static str {
        match self {
            TargetKind::Webhook => "Webhook",
            TargetKind::Dingtalk => "钉钉",
            TargetKind::Wecom => "企业微信",
            TargetKind::Feishu => "飞书",
        }
    }

    /// The vendor's origins (scheme, host).
    fn origins(self) -> &'static [&'static str] {
        match self {
            TargetKind::Webhook => &[],
            TargetKind::Dingtalk => &["https://oapi.dingtalk.com"],
            TargetKind::Wecom => &["https://qyapi.weixin.qq.com"],
            TargetKind::Feishu => &["https://open.feishu.cn", "https://open.larksuite.com"],
        }
    }

    /// The URL shape, for error messages.
    fn shape(self) -> &'static str {
        match self {
            TargetKind::Webhook => "",
            TargetKind::Dingtalk => "https://oapi.dingtalk.com/robot/send?access_token=<token>",
            TargetKind::Wecom => "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>",
            TargetKind::Feishu => "https://open.feishu.cn/open-apis/bot/v2/hook/<token>",
        }
    }

    /// The budget: messages a minute, and a second.
    fn budget(self) -> pace::Budget {
        match self {
            TargetKind::Feishu => pace::Budget::new(100, Some(5)),
            _ => pace::Budget::new(20, None),
        }
    }

    /// The largest request body the vendor takes, in bytes (with a margin where the vendor
    /// counts only part of it). WeCom: 4096 bytes of markdown content; Feishu: 20 KB of body;
    /// DingTalk: kept to the same 20 KB.
    fn max_body(self) -> usize {
        match self {
            TargetKind::Wecom => 4096,
            _ => 20_000,
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A robot URL or secret that is not what the vendor gives, in English and Chinese.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{en}")]
pub struct BadRobot {
    pub en: String,
    pub zh: String,
}

/// Origins accepted for each vendor besides the vendor's own, e.g. a local receiver in tests or
/// an egress gateway that forwards to the vendor. The target rule still applies to them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RobotOrigins(BTreeMap<TargetKind, Vec<url::Url>>);

impl RobotOrigins {
    /// Also accepts `origin` (`scheme://host[:port]`) for `kind`.
    pub fn with(mut self, kind: TargetKind, origin: &str) -> Result<Self, url::ParseError> {
        let url = url::Url::parse(origin)?;
        self.0.entry(kind).or_default().push(url);
        Ok(self)
    }

    fn accepts(&self, kind: TargetKind, url: &url::Url) -> bool {
        let origin = url.origin();
        kind.origins()
            .iter()
            .filter_map(|o| url::Url::parse(o).ok())
            .chain(self.0.get(&kind).into_iter().flatten().cloned())
            .any(|o| o.origin() == origin)
    }
}

/// Whether a credential is made of the characters vendors use.
fn token_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Checks a robot's URL and secret against the vendor's shape; returns the URL with its
/// credential masked (what the subscription shows).
pub fn check(
    kind: TargetKind,
    text: &str,
    secret: Option<&str>,
    origins: &RobotOrigins,
) -> Result<String, BadRobot> {
    let (vendor, vendor_zh, shape) = (kind.vendor(), kind.vendor_zh(), kind.shape());
    let bad = |en: &str, zh: &str| BadRobot {
        en: format!("{en}; a {vendor} robot URL looks like {shape}"),
        zh: format!("{zh}；{vendor_zh}机器人地址形如 {shape}"),
    };
    let url = url::Url::parse(text).map_err(|_| bad("not a URL", "不是有效的地址"))?;
    if !origins.accepts(kind, &url) {
        return Err(bad(
            &format!(
                "`{}` is not the {vendor} robot host",
                url.origin().ascii_serialization()
            ),
            &format!(
                "`{}` 不是{vendor_zh}机器人的地址",
                url.origin().ascii_serialization()
            ),
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad("unexpected parts in the URL", "地址中有多余的部分"));
    }
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let only = |name: &str| match query.as_slice() {
        [(k, v)] if k == name && token_like(v) => Ok(v.clone()),
        _ => Err(bad(
            &format!("the URL must carry exactly one `{name}` parameter"),
            &format!("地址须且只须带一个 `{name}` 参数"),
        )),
    };
    let masked = match kind {
        TargetKind::Webhook => return Ok(text.to_string()),
        TargetKind::Dingtalk | TargetKind::Wecom => {
            let (path, param) = if kind == TargetKind::Dingtalk {
                ("/robot/send", "access_token")
            } else {
                ("/cgi-bin/webhook/send", "key")
            };
            if url.path() != path {
                return Err(bad(
                    &format!("the path must be {path}"),
                    &format!("路径须为 {path}"),
                ));
            }
            let token = only(param)?;
            let mut m = url.clone();
            m.set_query(None);
            format!("{m}?{param}={}", mask(&token))
        }
        TargetKind::Feishu => {
            let token = url
                .path()
                .strip_prefix("/open-apis/bot/v2/hook/")
                .filter(|t| token_like(t))
                .ok_or_else(|| {
                    bad(
                        "the path must be /open-apis/bot/v2/hook/<token>",
                        "路径须为 /open-apis/bot/v2/hook/<token>",
                    )
                })?;
            if url.query().is_some() {
                return Err(bad("the URL takes no query", "地址不带查询参数"));
            }
            let mut m = url.clone();
            m.set_path("/open-apis/bot/v2/hook/");
            format!("{m}{}", mask(token))
        }
    };
    match (kind, secret) {
        (TargetKind::Wecom, Some(_)) => Err(BadRobot {
            en: "a WeCom robot has no signing secret: the key in its URL is its credential".into(),
            zh: "企业微信机器人没有加签密钥，地址中的 key 即为凭证".into(),
        }),
        (_, Some(s)) if s.trim().is_empty() || s.len() > 200 || !s.is_ascii() => Err(BadRobot {
            en: format!(
                "the {vendor} signing secret must be the ASCII text the robot's settings show"
            ),
            zh: format!("{vendor_zh}加签密钥须为机器人设置中显示的 ASCII 文本"),
        }),
        (TargetKind::Dingtalk, Some(s)) if !s.starts_with("SEC") => Err(BadRobot {
            en: "a DingTalk signing secret starts with SEC".into(),
            zh: "钉钉加签密钥以 SEC 开头".into(),
        }),
        _ => Ok(masked),
    }
}

/// A credential with all but its last four characters hidden.
fn mask(token: &str) -> String {
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// What is sealed for a robot subscription: its real URL and its signing secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub url: String,
    pub secret: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(…)")
    }
}

/// A message ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub title: String,
    pub lines: Vec<String>,
    pub link: Option<String>,
    /// Mobile numbers to @-mention (the people tasks opened for), each once, in order.
    pub mentions: Vec<String>,
}

/// WeCom's largest text message content, in bytes (a text message is what can @-mention).
const WECOM_TEXT_MAX: usize = 2048;

impl Message {
    /// One event alone; `console` is the console's address, and an event of a lead links to the
    /// lead's record there.
    pub fn single(r: &render::Rendered, console: Option<&str>) -> Self {
        let link = console.map(|base| match r.lead_id {
            Some(lead) => format!("{}/console/leads/{lead}", base.trim_end_matches('/')),
            None => base.to_string(),
        });
        Self {
            title: format!("Funnel · {}", r.title),
            lines: r.lines(),
            link,
            mentions: r.mention.iter().cloned().collect(),
        }
    }

    /// Several events as one digest.
    pub fn digest(rs: &[render::Rendered], link: Option<&str>) -> Self {
        Self {
            title: format!("Funnel · {} 条动态", rs.len()),
            lines: rs
                .iter()
                .enumerate()
                .map(|(i, r)| format!("{}. {}", i + 1, r.line()))
                .collect(),
            link: link.map(str::to_string),
            mentions: rs.iter().fold(Vec::new(), |mut all, r| {
                if let Some(m) = &r.mention
                    && !all.contains(m)
                {
                    all.push(m.clone());
                }
                all
            }),
        }
    }

    /// The message as plain text (WeCom's text message, which alone can @-mention by number).
    pub fn plain(&self) -> String {
        let mut parts = vec![self.title.clone()];
        // The lines' markdown emphasis would show as asterisks in plain text.
        parts.extend(self.lines.iter().map(|l| l.replace("**", "")));
        parts.extend(
            self.link
                .as_ref()
                .map(|l| format!("在 Funnel 控制台查看：{l}")),
        );
        parts.join("\n")
    }

    fn link_line(&self) -> Option<String> {
        self.link
            .as_ref()
            .map(|l| format!("[在 Funnel 控制台查看]({l})"))
    }

    /// The markdown DingTalk and WeCom show.
    pub fn markdown(&self) -> String {
        let mut parts = vec![format!("#### {}", self.title)];
        parts.extend(self.lines.iter().cloned());
        parts.extend(self.link_line());
        parts.join("\n\n")
    }

    /// The request body for `kind`, signed with `secret` at `now` where the vendor signs bodies.
    pub fn body(&self, kind: TargetKind, secret: Option<&str>, now: DateTime<Utc>) -> Value {
        match kind {
            TargetKind::Webhook | TargetKind::Dingtalk if self.mentions.is_empty() => json!({
                "msgtype": "markdown",
                "markdown": { "title": self.title, "text": self.markdown() },
            }),
            // DingTalk shows a mention only where the text names the number after `@`.
            TargetKind::Webhook | TargetKind::Dingtalk => {
                let at: Vec<String> = self.mentions.iter().map(|m| format!("@{m}")).collect();
                json!({
                    "msgtype": "markdown",
                    "markdown": {
                        "title": self.title,
                        "text": format!("{}\n\n{}", self.markdown(), at.join(" ")),
                    },
                    "at": { "atMobiles": self.mentions, "isAtAll": false },
                })
            }
            TargetKind::Wecom if self.mentions.is_empty() => json!({
                "msgtype": "markdown",
                "markdown": { "content": self.markdown() },
            }),
            // WeCom's markdown cannot mention: a text message with the numbers to mention.
            TargetKind::Wecom => json!({
                "msgtype": "text",
                "text": { "content": self.plain(), "mentioned_mobile_list": self.mentions },
            }),
            TargetKind::Feishu => {
                let mut text = self.lines.join("\n");
                if let Some(l) = self.link_line() {
                    text.push_str("\n\n");
                    text.push_str(&l);
                }
                let mut body = json!({
                    "msg_type": "interactive",
                    "card": {
                        "config": { "wide_screen_mode": true },
                        "header": { "title": { "tag": "plain_text", "content": self.title } },
                        "elements": [ { "tag": "div", "text": { "tag": "lark_md", "content": text } } ],
                    },
                });
                if let Some(s) = secret {
                    let ts = now.timestamp();
                    body["timestamp"] = json!(ts.to_string());
                    body["sign"] = json!(sign::feishu(s, ts));
                }
                body
            }
        }
    }

    /// Whether the message fits the vendor's size limit.
    pub fn fits(&self, kind: TargetKind) -> bool {
        let size = match kind {
            TargetKind::Wecom if !self.mentions.is_empty() => {
                return self.plain().len() <= WECOM_TEXT_MAX;
            }
            TargetKind::Wecom => self.markdown().len(),
            // The signature adds under 100 bytes.
            _ => {
                self.body(kind, None, DateTime::UNIX_EPOCH)
                    .to_string()
                    .len()
                    + 100
            }
        };
        size <= kind.max_body()
    }

    /// The message cut down to fit (only a single event's message with very long notes needs
    /// it): lines are shortened from the end.
    pub fn fitted(mut self, kind: TargetKind) -> Self {
        while !self.fits(kind) {
            let Some(longest) = (0..self.lines.len()).max_by_key(|i| self.lines[*i].len()) else {
                break;
            };
            let line = &mut self.lines[longest];
            let keep = line.chars().count() * 3 / 4;
            if keep < 8 {
                break;
            }
            *line = line.chars().take(keep).collect::<String>() + "…";
        }
        self
    }
}

/// The URL a message is POSTed to: DingTalk's carries the signature.
pub fn send_url(kind: TargetKind, creds: &Credentials, now: DateTime<Utc>) -> String {
    match (kind, &creds.secret) {
        (TargetKind::Dingtalk, Some(s)) => {
            let ts = now.timestamp_millis();
            format!(
                "{}&timestamp={ts}&sign={}",
                creds.url,
                sign::dingtalk(s, ts)
            )
        }
        _ => creds.url.clone(),
    }
}

/// Whether a delivery error is a chat robot vendor's own answer (its error code and message),
/// which office roles may see: it says nothing about the network.
pub fn is_vendor_answer(error: &str) -> bool {
    ["DingTalk ", "WeCom ", "Feishu "]
        .iter()
        .any(|v| error.starts_with(v))
}

/// How a vendor answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// Not accepted; retry after the usual backoff.
    Failed(String),
    /// Throttled: send nothing to this robot for this long.
    Throttled(String, std::time::Duration),
}

/// What a vendor's answer means: HTTP 200 is not enough, the code in the body must be 0.
pub fn answer(kind: TargetKind, status: u16, retry_after: Option<u64>, body: &str) -> Answer {
    use std::time::Duration;
    let vendor = kind.vendor();
    if status == 429 {
        let wait = Duration::from_secs(retry_after.unwrap_or(60).clamp(1, 3600));
        return Answer::Throttled(format!("{vendor} answered 429 Too Many Requests"), wait);
    }
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code_field = if kind == TargetKind::Feishu {
        "code"
    } else {
        "errcode"
    };
    let msg_field = if kind == TargetKind::Feishu {
        "msg"
    } else {
        "errmsg"
    };
    let code = parsed
        .as_ref()
        .and_then(|v| v.get(code_field).or_else(|| v.get("StatusCode")))
        .and_then(Value::as_i64);
    let msg = parsed
        .as_ref()
        .and_then(|v| v.get(msg_field).or_else(|| v.get("StatusMessage")))
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if !(200..300).contains(&status) {
        return Answer::Failed(match code {
            Some(c) => format!("{vendor} answered {status}, {code_field} {c}: {msg}"),
            None => format!("the receiver answered {status}"),
        });
    }
    match code {
        Some(0) => Answer::Accepted,
        Some(c) => {
            let text = format!("{vendor} {code_field} {c}: {msg}");
            let throttle = match (kind, c) {
                (TargetKind::Dingtalk, 130_101) => Some(Duration::from_secs(600)),
                (TargetKind::Wecom, 45_009) => Some(Duration::from_secs(65)),
                (TargetKind::Feishu, 11_232) => Some(Duration::from_secs(60)),
                _ => None,
            };
            match throttle {
                Some(wait) => Answer::Throttled(text, wait),
                None => Answer::Failed(text),
            }
        }
        None => Answer::Failed(format!(
            "{vendor} answered {status} without a `{code_field}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_per_vendor_and_masked() {
        let none = RobotOrigins::default();
        let ok = |k, u: &str, s: Option<&str>| check(k, u, s, &none).unwrap();
        assert_eq!(
            ok(
                TargetKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789",
                Some("SEC123")
            ),
            "https://oapi.dingtalk.com/robot/send?access_token=…6789"
        );
        assert_eq!(
            ok(
                TargetKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
                None
            ),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…5aaa"
        );
        assert_eq!(
            ok(
                TargetKind::Feishu,
                "https://open.larksuite.com/open-apis/bot/v2/hook/0d7a-11ee-b000",
                None
            ),
            "https://open.larksuite.com/open-apis/bot/v2/hook/…b000"
        );
        for (k, u, s, says) in [
            (
                TargetKind::Dingtalk,
                "http://oapi.dingtalk.com/robot/send?access_token=a",
                None,
                "not the DingTalk robot host",
            ),
            (
                TargetKind::Dingtalk,
                "https://evil.example/robot/send?access_token=a",
                None,
                "not the DingTalk robot host",
            ),
            (
                TargetKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send",
                None,
                "access_token",
            ),
            (
                TargetKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=a&x=1",
                None,
                "access_token",
            ),
            (
                TargetKind::Dingtalk,
                "https://oapi.dingtalk.com/other?access_token=a",
                None,
                "path",
            ),
            (
                TargetKind::Dingtalk,
                "https://oapi.dingtalk.com/robot/send?access_token=a",
                Some("abc"),
                "SEC",
            ),
            (
                TargetKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                Some("SEC1"),
                "no signing secret",
            ),
            (
                TargetKind::Wecom,
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?token=k",
                None,
                "`key`",
            ),
            (
                TargetKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/",
                None,
                "path",
            ),
            (
                TargetKind::Feishu,
                "https://open.feishu.cn/open-apis/bot/v2/hook/a?b=c",
                None,
                "no query",
            ),
        ] {
            let e = check(k, u, s, &none).unwrap_err();
            assert!(e.en.contains(says), "{u}: {}", e.en);
            assert!(
                !e.zh.is_empty() && e.zh.chars().any(|c| c > '\u{2e80}'),
                "{}",
                e.zh
            );
        }
        let local = RobotOrigins::default()
            .with(TargetKind::Dingtalk, "http://127.0.0.1:9000")
            .unwrap();
        check(
            TargetKind::Dingtalk,
            "http://127.0.0.1:9000/robot/send?access_token=abc",
            None,
            &local,
        )
        .unwrap();
        assert!(
            check(
                TargetKind::Dingtalk,
                "http://127.0.0.1:9001/robot/send?access_token=abc",
                None,
                &local
            )
            .is_err()
        );
    }

    #[test]
    fn a_zero_code_is_success_and_anything_else_a_failure_or_throttle() {
        use std::time::Duration;
        let a = |k, s, r, b| answer(k, s, r, b);
        assert_eq!(
            a(
                TargetKind::Dingtalk,
                200,
                None,
                r#"{"errcode":0,"errmsg":"ok"}"#
            ),
            Answer::Accepted
        );
        assert_eq!(
            a(
                TargetKind::Dingtalk,
                200,
                None,
                r#"{"errcode":310000,"errmsg":"sign not match"}"#
            ),
            Answer::Failed("DingTalk errcode 310000: sign not match".into())
        );
        assert_eq!(
            a(
                TargetKind::Dingtalk,
                200,
                None,
                r#"{"errcode":130101,"errmsg":"send too fast"}"#
            ),
            Answer::Throttled(
                "DingTalk errcode 130101: send too fast".into(),
                Duration::from_secs(600)
            )
        );
        assert!(matches!(
            a(TargetKind::Wecom, 200, None, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
            Answer::Throttled(_, d) if d == Duration::from_secs(65)
        ));
        assert!(matches!(
            a(TargetKind::Feishu, 200, None, r#"{"code":11232,"msg":"frequency limited"}"#),
            Answer::Throttled(_, d) if d == Duration::from_secs(60)
        ));
        assert_eq!(
            a(
                TargetKind::Feishu,
                200,
                None,
                r#"{"code":19021,"msg":"sign match fail"}"#
            ),
            Answer::Failed("Feishu code 19021: sign match fail".into())
        );
        assert_eq!(
            a(
                TargetKind::Feishu,
                200,
                None,
                r#"{"code":0,"msg":"success","data":{}}"#
            ),
            Answer::Accepted
        );
        assert!(matches!(
            a(TargetKind::Wecom, 429, Some(7), ""),
            Answer::Throttled(_, d) if d == Duration::from_secs(7)
        ));
        assert!(matches!(
            a(TargetKind::Wecom, 200, None, "<html>"),
            Answer::Failed(_)
        ));
        assert!(matches!(
            a(TargetKind::Wecom, 502, None, ""),
            Answer::Failed(_)
        ));
    }
}
