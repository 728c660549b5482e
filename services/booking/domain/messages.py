"""Every sentence booking shows a person, in Chinese, in one place (pure).

Form errors on the phone page and in the firm's own gRPC calls (its QR token calls:
CreateOrder, GetOrder, CancelOrder, SubmitRectification), the pages' titles and
explanations, the reasons written into an order's or a ticket's history, the poster, and
what staff read in booking's errors (a record not found, who may do what, the expert pool's
field violations). Field names in violations stay the proto's (`expert.slots`), for programs.
Names of values (statuses, severities, domains) are labels: entrypoints/web/labels.py
and services/common/vocabulary.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from enum import StrEnum

from services.common.values import preview

# ---------------------------------------------------------------- the order form
NO_ITEM = "请至少选择一项服务"
TOO_MANY_ITEMS = "最多选择{n}项服务"
UNKNOWN_ITEMS = "未知的服务项目：{items}"
BAD_SLOT = "时段格式不正确：{slot}"
SLOT_OUTSIDE_WINDOW = "请选择今后{days}天内的时段：{slot}"
TOO_FEW_SLOTS = "请至少选择{n}个半天时段"
TOO_MANY_SLOTS = "最多选择{n}个时段"
NO_NAME = "请填写联系人姓名"
NAME_TOO_LONG = "姓名最多{n}个字"
# the rule is orders.PHONE (13–19 then 9 digits, as every mainland mobile number is);
# the message says that rule, not the spec's looser "starting with 1" (docs/booking.md)
MOBILE_RULE = "请填写11位手机号码（以13至19开头）"
BAD_PHONE = MOBILE_RULE
NOTE_TOO_LONG = "备注最多{n}个字"
CONTROL_CHARACTERS = "不能包含不可见的控制字符或无法识别的字符（�）"
BAD_IDEMPOTENCY_KEY = "缺少或过长的防重复提交编号（最多{n}个字符）"
FORM_EXPIRED = "页面已过期，请核对后重新提交"
# the same idempotency key sent again with other content (ALREADY_EXISTS)
SEE_EARLIER_ORDER = "查看已提交的预约{order_id}"
ORDER_KEY_REUSED = (
    "这份预约已经提交过（预约编号{order_id}），本次修改的内容没有保存；如需另约，请重新打开预约页面"
)
ORDER_REPEAT_EDITED = (
    "您已提交过相同服务项目和时段的预约（预约编号{order_id}），本次填写的联系人、电话或备注没有保存。"
    "如需修改，请先取消原预约，再重新提交；如需另约，请选择其他服务项目或时段。"
)
ORDER_SUBMITTED_BEFORE = (
    "您已提交过相同服务项目和时段的预约，就是下面这一单，本次没有重复预约。"
    "如需另约，请返回预约页选择其他服务项目或时段。"
)
CANCEL_REASON_TOO_LONG = "取消原因最多{n}个字"
CANCEL_NEEDS_REASON = "主管部门取消预约时须写明原因"
# the firm's cancel page (the phone page: /q/<token>/orders/<id>/cancel)
CANCEL_WARNING = (
    "取消后专家不会上门，所约时段将让给其他企业；取消后不能恢复，如仍需指导请重新预约。"
)
CANCEL_NOT_OPEN = "该预约当前为“{status}”，不能取消。"
CANCEL_POSTS_TOO_FAST = "提交太频繁，本次没有取消。取消原因已保留，请{seconds}秒后再提交。"
ORDER_CANCELLED = "预约已取消，专家不会上门。如仍需指导，可重新预约。"
CANCEL_EARLIER_ORDER = "取消原预约{order_id}"

# ---------------------------------------------------------------- proof of fix
NO_PHOTO = "请上传整改后的照片（JPEG或PNG）"
PHOTO_TOO_LARGE = "照片不能超过5MB，请在相机设置中调低照片尺寸（分辨率），或截图后重新选择"
# a file chosen but empty (0 bytes: a photo not yet downloaded from a cloud album, a
# failed copy): not "no photo", which the owner who picked one would not understand
PHOTO_EMPTY = "所选照片是空文件（0字节），请重新拍照或选择照片"
# the ticket page's script (static/photo.js) shrinking a camera photo over 5 MB
PHOTO_SHRINKING = "照片较大，正在压缩，请稍候……"
PHOTO_SHRUNK = "照片较大，已自动压缩后再上传。"
PHOTO_NOT_IMAGE = "只接受JPEG或PNG格式的照片"
PHOTO_TOO_MANY_PIXELS = "照片尺寸过大（超过{megapixels}00万像素），请缩小后再上传"
UPLOAD_FAILED = "上传失败，请重新选择一张照片"
PROOF_TOO_LONG = "说明最多{n}个字"
ALREADY_VERIFIED = "该整改单已复查通过，无需再提交"
PROOFS_FULL = "该整改单本轮已上传{n}次整改照片，请等待检查人员复查，或联系检查人员"
PROOF_WAITING = "整改材料已提交，等待检查人员复查。复查结果出来前，如有需要可以重新上传照片。"

# ---------------------------------------------------------------- QR codes
QR_INVALID = "二维码无效（{reason}）"
QR_REJECTED = {
    "malformed": "格式不正确",
    "unknown key": "签名密钥未知",
    "bad signature": "签名不符",
}
QR_REVOKED = "二维码已失效，请使用最新张贴的二维码"

# ---------------------------------------------------------------- records and who may touch them
RECORD_NAMES = {"order": "预约单", "ticket": "整改单", "photo": "照片", "event": "待发事件"}
NO_SUCH_RECORD = "没有找到该{what}（{ref}）"
FIRM_NOT_REGISTERED = "企业{ref}不在规则服务的企业库中，请先在企业库登记"
NEEDS_CREDENTIAL = "此操作需要企业的二维码或工作人员的访问令牌"
ONLY_DISPATCHED_EXPERT = "只有被派单的专家（或booking.admin）可以登记这次上门服务"
ONLY_RECHECKERS = "只有检查人员或发现该隐患的专家可以复查"
ONLY_ADMIN_CANCELS = "只有booking.admin可以代表主管部门取消预约"
# an id or a filter a read or a lookup takes that can name nothing (domain/lookups.py)
FIRM_ID_REQUIRED = "请填写企业的统一社会信用代码（18位）"
BAD_FIRM_ID = (
    "{ref}不是有效的统一社会信用代码：应为18位数字或大写字母（GB 32100），末位校验码须正确"
)
RECORD_ID_REQUIRED = "请填写{what}编号"
BAD_RECORD_ID = "{ref}不是有效的{what}编号：编号为1至{n}个英文字母或数字"
UNKNOWN_DOMAIN = "未知的高危领域代码{ref}：应为九大高危领域的代码之一（如gas、dust_explosion）"


def a_day(day: date | str) -> str:
    """A day as every page and message people read writes it: 2026年6月7日 (docs/booking.md
    "Dates"). A `YYYY-MM-DD` string (a date another service sent: a deadline, a blocker's
    day) is written the same way; any other text as it is, "" as ""."""
    if isinstance(day, str):
        try:
            return a_day(date.fromisoformat(day))
        except ValueError:
            return day
    return f"{day.year}年{day.month}月{day.day}日"


def quoted(value: object) -> str:
    """A value quoted in a message people read: at most a short prefix, and how long it
    was, in Chinese (services/common/values.py `preview`)."""
    return preview(value, cut="…（共{size}个字符）")


def shown(value: str, limit: int) -> str:
    """A value echoed inside a sentence: at most `limit` characters, each one a person
    cannot see (a control or format character) written as its escape (\\x00)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:limit])


def no_such(what: str, ref: str) -> str:
    """'No such order, ticket or photo', quoting at most a short prefix of the reference."""
    return NO_SUCH_RECORD.format(what=RECORD_NAMES[what], ref=quoted(ref))


# ---------------------------------------------------------------- the outbox (operators)
# `booking outbox --discard EVENT_ID --reason TEXT` (service_layer/outbox.py `discard`)
OUTBOX_DISCARD_REASON = "请写明放弃发送的原因（1至{n}个字），记入审计日志"
OUTBOX_ALREADY_DELIVERED = "事件{ref}已送达规则服务，无需放弃"
OUTBOX_ALREADY_DISCARDED = "事件{ref}已于{at}放弃发送"
OUTBOX_NOT_REFUSED = "事件{ref}没有被规则服务拒收过，正在排队发送，不能放弃"
OUTBOX_BEING_SENT = "事件{ref}正在重新发送给规则服务，请稍后查看结果再决定是否放弃"


# ---------------------------------------------------------------- the expert pool (staff)
EXPERT_ID = "必填，1至{n}个字符：英文字母、数字或 - _ .，以字母或数字开头，不含空格"
EXPERT_NAME = "必填，最多{n}个字"
EXPERT_DOMAINS = "请选择一个或多个高危领域（九个领域之一）"
EXPERT_PER_DAY = "每天最多接单数只能是1或2"
EXPERT_CONFLICTS = "最多{n}个统一社会信用代码，每个须带正确的校验位"
EXPERT_PHONE = MOBILE_RULE
# a masked mobile (138****5678, as every reader but booking.admin reads it) that is not
# the mask of the expert's stored one: written back unchanged it keeps the stored mobile
EXPERT_PHONE_MASKED = (
    "手机号码中间四位已隐去（如138****5678），与该专家登记的手机号码不符："
    "请填写完整的11位手机号码；不改手机号码时原样发回读到的值即可"
)
EXPERT_SLOT = "时段{slot}格式不正确，应为“YYYY-MM-DD AM”或“YYYY-MM-DD PM”"
EXPERT_SLOTS_MAX = "最多{n}个半天时段"
EXPERT_REGIONS = "最多{n}个镇街，每个1至{m}个字"
UNKNOWN_REGION = "未知的镇街{value}：请填写rulesets/regions.yaml中的名称（如稠城街道）或代码{hint}"
NEAREST_REGIONS = "；相近的有：{names}"

# ---------------------------------------------------------------- history and dispatch
ORDER_TAKEN = "扫码点单"
CANCELLED_BY_FIRM = "企业取消"
DISPATCHED_TO = "派单给专家 {expert}，{slot}"
NO_EXPERT = "暂无可派专家（所选时段内没有空闲的对口专家），有空闲时将自动派单"
# every preferred half-day has passed before an expert was free: the system cancels
SLOTS_PASSED = (
    "您选择的上门时段都已过去，未能安排专家，本预约已由系统取消。请重新预约，选择今后的时段。"
)
# an admin's DispatchOrder of such an order (FAILED_PRECONDITION, naming order_id)
DISPATCH_SLOTS_PASSED = (
    "该预约的期望时段（preferred_slots）都已过去，不能派单；系统会取消它并提示企业重新预约"
)
# an order taken from its expert by the expert's own change, then dispatched again
TAKEN_FROM_EXPERT = {
    "inactive": "专家{expert}已停止接单，{slot}的上门重新派单",
    "slot": "专家{expert}已撤回{slot}的空闲时段，重新派单",
    "conflict": "专家{expert}需回避本企业（利益冲突），{slot}的上门重新派单",
    "domains": "专家{expert}已不再承接本预约的服务领域，{slot}的上门重新派单",
}
# the same rows as the firm reads them (domain/order_history.py): the expert by name,
# and why an expert cannot come is not the firm's to read
DISPATCHED_UNNAMED = "已派专家上门，{slot}"
TAKEN_FOR_FIRM = {
    "again": "原定专家无法上门，已为您重新派单",
    "waiting": "原定专家无法上门，正在为您重新安排",
}
VISIT_FINDINGS = "{n}项隐患"
NO_FINDINGS = "未发现隐患"
FOUND_ON_SITE = "现场发现"
RECHECK_PASSED = "复查通过"
RECHECK_FAILED = "复查未通过"
ALL_VERIFIED = "全部隐患复查通过"

# ---------------------------------------------------------------- pages: (title, explanation)
PAGE_QR_INVALID = (
    "二维码无效或已失效",
    "请扫描企业现场张贴的最新二维码。如二维码已更换或损坏，请联系属地应急管理部门。",
)
PAGE_NOT_FOUND = ("没有找到", "没有找到该记录，请返回企业主页查看。")
PAGE_BAD_REQUEST = ("请求有误", "请检查输入后重试")
PAGE_CONFLICT = ("当前状态下不能进行该操作", "请返回上一页刷新后查看。")
PAGE_UNAVAILABLE = ("服务暂时不可用", "系统繁忙或正在维护，请稍后再试。")
PAGE_TOO_MANY = ("操作太频繁", "请稍等片刻再试。")
# the order or the proof form over a post limit (the QR code's 30 a minute), on the form
POSTS_TOO_FAST = "提交太频繁，本次没有保存。已填写的内容都已保留，请{seconds}秒后再提交。"
PROOF_POSTS_TOO_FAST = (
    "提交太频繁，本次没有保存。整改说明已保留，请{seconds}秒后重新选择照片再提交。"
)
PAGE_TOO_LARGE = ("提交的内容太大", "填写的内容超过了页面允许的长度，请返回上一页删减后重新提交。")
# a request body that stopped arriving (web/middleware.py BodyPace): cut, nothing saved
PAGE_UPLOAD_STALLED = (
    "上传中断",
    "网络中断或太慢，提交的内容没有收全，未保存。请在网络良好时重新提交。",
)
PAGE_NO_SUCH_PAGE = ("页面不存在", "没有找到您要访问的页面。")
# a firm's form posted from another site (web/middleware.py OriginCheck): nothing saved
PAGE_FOREIGN_POST = (
    "无法提交",
    "该操作只能在本企业二维码打开的页面上提交，本次没有保存。请重新扫描企业二维码后再操作。",
)
PAGE_METHOD = ("不支持的操作", "请返回上一页重试。")
PAGE_HTTP_ERROR = ("请求有误", "请返回上一页重试。")
PAGE_CRASHED = ("系统出错了", "很抱歉，请稍后再试；问题已记录。")
PAGE_NO_REGION = (
    "没有这个地区",
    "“{region}”不是本地的镇街或县（市、区）。请填写名称（如稠城街道、义乌市）"
    "或行政区划代码（如330782001、330782）{hint}",
)
NEAREST_REGIONS = "；是否要找：{names}"
PAGE_DASHBOARD_SIGN_IN = (
    "请先登录",
    "统计看板仅供监管人员查看：请用工作人员账户登录后再打开（程序访问请附带监管人员访问令牌）。",
)
DASHBOARD_SIGN_IN_LINK = "工作人员登录"
# a signed-in expert (or an expert's token) on /dashboard (authz.may_open_dashboard)
PAGE_DASHBOARD_FORBIDDEN = (
    "无权查看",
    "统计看板供监管人员、检查员和管理员使用；专家请在“我的上门任务”中查看自己的工作。",
)
# an expert's token on GetStats (authz.require_stats_reader): the dashboard's rule
STATS_FORBIDDEN = "统计数据供监管人员、检查员和管理员查看；专家只能查看派给自己的上门服务"

# ---------------------------------------------------------------- the dashboard
# the headline, in the city reports' words (domain/headline.py rounds the last figure)
HEADLINE = "已响应预约 {answered} 次 · 服务企业 {firms} 家 · 消除隐患 {eliminated}处"
HEADLINE_PERIOD = "{first}至{last}"
WHITELIST_UNAVAILABLE = "暂时无法从规则服务获取白名单数据，其他图表不受影响，请稍后刷新。"
CHART_NO_DATA = "所选范围内暂无数据"
CHART_TABLE = "查看数据表"
CSV_DOWNLOAD = "下载CSV（{title}）"
# a filter of the dashboard it cannot use, shown beside its field (the other filters kept)
FILTERS_NOT_APPLIED = "筛选条件有误（见筛选栏中的提示），以下统计未按有误的条件筛选。"
PERIOD_DAY_RANGE = "日期须在{first}年至{last}年之间"
PERIOD_REVERSED = "开始日期不能晚于结束日期（未填结束日期时为今天）"
PERIOD_TOO_LONG = "统计期间最长{months}个月，请缩短"

# ---------------------------------------------------------------- staff pages (review 59)
# the visit form's clause picker: what its count counts
CLAUSES_FOR_FIRM = "适用于该企业的条款：{n}条"
CLAUSES_FOUND = "搜索结果：{n}条（仅限适用于该企业的条款）"

# ---------------------------------------------------------------- the poster
POSTER_TITLE = "安全生产 扫码点单"
POSTER_INVITATION = "手机扫码，免费预约安全专家上门指导（容错式指导，不处罚）"
POSTER_MENU = "服务菜单"
POSTER_HOTLINE = "服务热线 {hotline}"

# ---------------------------------------------------------------- the firm's own page (issue 11)
TOO_MANY_CLAUSE_REFS = "最多关联{n}条条款"
BAD_CLAUSE_REF = "条款编号格式不正确：{ref}"
SIGN_IN_TITLE = "企业本人登录"
SIGN_IN_NEEDED = "该内容仅企业本人可见，请先用登记的手机号登录。"
SIGN_IN_CODE_SENT = "如该号码是本企业登记的登录手机，验证码已发送，10分钟内有效。"
SIGN_IN_BAD_PHONE = MOBILE_RULE
SIGN_IN_BAD_CODE_FORMAT = "请填写6位数字验证码"
SIGN_IN_WRONG_CODE = "验证码错误或已过期，请重新输入或重新获取"
SIGN_IN_TOO_MANY_TRIES = "验证码输错次数过多，请重新获取验证码"
# past the day's cap of wrong codes for a number (domain/sign_in.py): each code one try
SIGN_IN_WRONG_CODE_VOID = "验证码错误。该号码今日输错次数过多，此验证码已作废，请重新获取验证码"
# a right code sent to a number that is no longer the one a code would go to (the
# register's contact corrected since, or the firm given another sign-in mobile): void
SIGN_IN_NUMBER_NO_LONGER_ON_RECORD = (
    "验证码已失效：该号码已不是本企业登记的手机号，请用登记的手机号重新获取"
)
SIGN_IN_REGISTER_UNAVAILABLE = "暂时无法核对企业登记的手机号，请稍后再试（验证码10分钟内有效）"
# a code asked for while rules cannot answer: the same for every number (none is told
# apart); a code still goes to the firm's sign-in mobile, none to the register's contact
SIGN_IN_CODE_REGISTER_UNAVAILABLE = (
    "暂时无法核对工商登记的联系人手机号：如该号码是本企业的登录手机，验证码已发送；"
    "如是工商登记的联系人手机，请稍后再获取验证码"
)
SIGN_IN_TOO_MANY_CODES = "获取验证码太频繁，请稍后再试"
SIGN_IN_NEEDS_SESSION = "此操作需要企业本人登录（凭二维码只能预约和查看预约编号）"
SIGN_IN_PHONE_SET = "登录手机已更新"
SIGN_IN_NO_QR_CODE = "该企业尚未生成二维码，请先生成二维码"
SIGN_IN_OWN_ORDERS_ONLY = "只能查看本企业的预约"
TOO_MANY_ORDERS = "该二维码预约太频繁，请稍后再试"
UNKNOWN_STATUS = "未知的状态值：{value}"
SMS_CODE_TEXT = "【安全生产扫码点单】您的登录验证码为{code}，10分钟内有效。请勿告诉他人。"
STATUS_UNAVAILABLE = "暂时无法获取企业状态（规则服务不可用），您仍可以预约专家。"
STATUS_WHITELIST = "已列入白名单：无事不扰（有效期至{until}）"
STATUS_ROUTINE = "常规监管（双随机抽查）"
STATUS_PRIORITY = "重点监管"
# the landing's tickets when none is open but the decision lists hazards (found by an
# inspection and reported to rules, not by a visit of ours: they have no ticket here);
# "暂无待整改隐患" under a list of hazards told the owner there was nothing to fix (review 63)
# a finding judged by an edition a newer one replaced, whose text rules has not loaded
# yet (rules.v1 Finding.superseded/successor: GB 35181-2017, replaced by GB 35181-2025 on
# 2025-11-01): said beside the finding, the names from rules' data
NEWER_EDITION = "新版标准"  # rules named no successor
EDITION_SUPERSEDED = "{edition}已被{successor}替代；新版条文尚未收录，本条暂按{edition}判定。"
HAZARDS_WITHOUT_TICKETS = (
    "上方判定发现的隐患还没有整改单：预约专家上门指导后，专家开具的整改单会列在这里，"
    "整改后可在此上传整改照片。"
)
# the decision's risk colour, as the firm reads it on its page (review 63: a white-listed
# firm never saw its colour, a red one only inside a blocker); the names as rules' own
# blocker text spells them ("风险等级为黄色（一般风险）")
RISK_LEVEL_LINE = "风险等级：{level}"
RISK_LEVEL_NAMES = {
    "red": "红色（重大风险）",
    "orange": "橙色（较大风险）",
    "yellow": "黄色（一般风险）",
    "blue": "蓝色（低风险）",
}
BOOK_FOR_THIS = "预约专家帮我整改"
REFS_PRIVATE = "预约会附上对应的条款，仅您和上门专家可见，不计入监管统计。"
# a rule the register names by a word (GEN:ledger) whose text the rules service cannot give now
CLAUSE_TEXT_UNAVAILABLE = "相关安全管理要求（条款内容暂时无法显示，请稍后刷新）"
# a clause the rules service's catalogue no longer has (a ruleset change removed it after
# a finding cited it: the finding stands, rules records it all the same)
CLAUSE_GONE = "该条款已不在现行规则集中，以整改通知书为准"
CLAUSE_GONE_GUIDANCE = "按整改通知书要求限期整改，整改后申请复查。"
SELF_CHECK_NOTE = "自查结果只显示给您本人：不保存、不上报，不作为处罚依据（容错式指导）。"
SELF_CHECK_NONE = "按您的回答，未发现隐患。"
SELF_CHECK_NONE_UNANSWERED = "您没有回答任何问题；按本企业已登记的情况，未发现隐患。"
SELF_CHECK_BASIS_ANSWERS = "结果按您的回答和本企业已登记的情况得出。"
SELF_CHECK_BASIS_RECORD = "您没有回答任何问题：以下结果仅按本企业已登记的情况得出。"
SELF_CHECK_BAD_NUMBER = "请填写数字"
SELF_CHECK_NEGATIVE = "不能为负数，没有请填0"
SELF_CHECK_TOO_BIG = "数值太大，最多填{n}"
SELF_CHECK_NOT_WHOLE = "请填写整数"
SELF_CHECK_BAD_YES_NO = "请选择“是”或“否”"
BLOCKER_SENTENCES = {
    "recent_penalty": "{arose} 受到行政处罚，{ends}起不再影响白名单",
    "recent_accident": "{arose} 发生生产安全事故，{ends}起不再影响白名单",
    "late_rectification": "{arose} 隐患逾期才整改完毕，{ends}起不再影响白名单",
    "open_hazard": "自{arose}起有隐患未经复查验收：整改并复查通过后不再影响白名单",
    "revoked_by_event": "{arose} 白名单因事件撤销：{reason}",
}
# the rules service writes a revocation's reason with this prefix already: shown once
REVOKED_BY_EVENT_PREFIX = "白名单因事件撤销："
# a hazard booking knows (one of the firm's tickets), named by what was found
HAZARD_NAMED = "“{description}”"
POSTER_CHECKLIST = "本企业适用的重大事故隐患自查清单"
POSTER_CHECKLIST_MORE = "……另有{n}项，扫码查看"
POSTER_CHECKLIST_NONE = "（暂无适用的重大事故隐患判定条款）"
# ---------------------------------------------------------------- staff pages
# one answer to an unknown name, a locked account and a wrong password
STAFF_SIGN_IN_REFUSED = "用户名或密码不正确，或账户已锁定（连续{n}次密码错误锁定{minutes}分钟）"
STAFF_THROTTLED = "此网络登录失败次数过多，请{minutes}分钟后再试"
STAFF_SIGNED_OUT = "已退出登录"
STAFF_SESSION_ENDED = "登录已过期，请重新登录"
PAGE_STAFF_CSRF = (
    "页面已过期或来源不明",
    "为保护您的账户，本次提交未被受理。请返回上一页，刷新后重新提交。",
)
PAGE_STAFF_FORBIDDEN = (
    "无权查看",
    "该记录不属于您的辖区或您的工作范围。如需协助，请联系管理员。",
)
PAGE_STAFF_NOT_FOUND = ("没有找到", "没有找到该记录，请返回工作台查看。")
STAFF_HOME_LINK = "返回工作台"
RECHECK_NEEDS_DEADLINE = "未通过时请填写今天之后的新整改期限"
RECHECK_NEEDS_NOTE = "未通过时请写明原因"
# a recheck whose conclusion is about another proof than the ticket holds now (gRPC)
RECHECK_PROOF_CHANGED_API = (
    "企业在您查看后提交了新的整改材料（现为第{now}次提交，本次复查针对的是第{seen}次），"
    "复查结论未保存；请重新读取整改单，查看新的整改材料后再复查"
)
RECHECK_BAD_PROOF_NUMBER = (
    "须为复查所针对的整改材料序号（整改单的 proof_number，从1起）；不核对时不填"
)
RECHECK_BAD_CHOICE = "请选择“通过”或“不通过”"
RECHECK_DONE_PASS = "已保存复查结果：通过"
RECHECK_DONE_FAIL = "已保存复查结果：不通过，已退回整改"
RECHECK_NOT_WAITING = "该整改单当前不在待复查状态，本次复查结论未保存"
# what happened to a ticket since the recheck form was opened (another tab, another
# person): who, when, what (review 59 F2); `who` is a name or RECHECK_YOU
RECHECK_TAKEN_PASSED = "{who}已于{when}复查通过该整改单。"
RECHECK_TAKEN_FAILED = "{who}已于{when}复查不通过，已退回企业整改，新的整改期限为{due}。"
RECHECK_NO_PROOF = "企业尚未提交本轮的整改材料（当前：待整改），提交后才能复查。"
# the firm sent another proof since the recheck form was opened: the conclusion was
# about a proof the person may not have seen the end of (a better photo), or one a
# failed recheck already sent back (a new round's): who failed it, when the new came
RECHECK_PROOF_CHANGED = "您打开本页后企业提交了新的整改材料，本次复查结论未保存"
RECHECK_FAILED_SINCE = "{who}已于{when}复查不通过，已退回企业整改。"
RECHECK_NEW_PROOF = (
    "企业已于{when}提交新的整改材料（第{n}次提交），复查结论须针对新的材料，请查看后重新填写。"
)
RECHECK_SEE_NEW_PROOF = "查看新的整改材料"
# the form's proof field is broken (not from a page served by this system)
RECHECK_PAGE_BROKEN = "页面数据不完整，请刷新本页后重新填写复查结论"
RECHECK_YOU = "您"
RECHECK_TYPED = "您填写的内容（未保存，可复制备用）"
# the confirmation after a recheck names the ticket it saved (firm: what was found)
RECHECK_SAVED_TICKET = "{firm}：{what}"
# the expert's own findings (/staff/findings, review 59 F1)
FINDINGS_WAITING_HEADING = "待复查（企业已提交整改材料）"
FINDINGS_OPEN_HEADING = "待企业整改"
FINDINGS_NONE = "暂无。"
FINDINGS_MORE = "仅列出期限最早的{n}件，还有更多"
FINDINGS_LINK = "我发现的整改单"
FINDINGS_LINK_WAITING = "我发现的整改单（{n}件待复查）"
QUEUE_LINK = "待复查整改单"
VISIT_BAD_SEVERITY = "请选择隐患等级"
VISIT_NEEDS_DESCRIPTION = "请填写隐患描述（最多1000字）"
VISIT_UNKNOWN_CLAUSE = "不是规则服务中的条款，请从条款列表中选择"
FINDING_SEVERITY = "请选择隐患等级：重大隐患或一般隐患"
FINDING_BELOW_CLAUSE = "该条款属于重大事故隐患判定标准，只能记为重大隐患"
FINDING_DESCRIPTION = "请填写隐患描述，最多{n}个字"
FINDING_CLAUSE = "{ref} 不是规则服务中的条款，请从条款列表中选择"
VISIT_CLAUSE_NOT_FOR_FIRM = "该条款不适用于这家企业，请移除后从条款列表中选择"
VISIT_BAD_DUE = "整改期限须为检查日之后的日期"
# a visit recorded days after it took place: a deadline already past would make the
# ticket overdue the moment it is made (review 67 F1)
FINDING_DUE_PASSED = "整改期限{day}已过，请填写今天之后的日期"
FINDING_DEFAULT_DUE_PASSED = "按检查日计算的默认整改期限{day}已过，请填写今天之后的整改期限"
VISIT_IN_FUTURE = "上门检查日期不能晚于今天"
VISIT_BEFORE_ORDER = "上门检查日期不能早于预约提交的日期"
VISIT_BAD_MINUTES = "现场时长为0到1440分钟"
VISIT_TOO_MANY = "一次最多记录50项隐患"
VISIT_NOT_OPEN = "该订单不在待上门状态，不能记录检查"
VISIT_RECORDED = "已保存检查记录"
# the visit form's on-site mobile: what a visit leaves as the firm's sign-in mobile
VISIT_MOBILE_FROM_ORDER = (
    "该企业还没有登录手机，本次检查须确定：现场负责人就是预约联系人时请勾选下方确认，"
    "否则请填写现场负责人的手机。该手机将用于企业登录。"
)
VISIT_CONTACT_CONFIRM = "现场联系人即预约联系人（{mobile}）"
VISIT_MOBILE_NEEDED = (
    "该企业还没有登录手机：请当面核对后勾选“现场联系人即预约联系人”，或填写现场负责人的手机"
)
VISIT_MOBILE_ON_RECORD = (
    "该企业已有登录手机（{mobile}），留空则不变；填写则改为该号码，企业须用新号码重新登录。"
)
# a visit's photos together (web form: one photo a finding, each ≤ 5 MB)
VISIT_PHOTO_OVER_TOTAL = "本次检查的照片合计不能超过{total}MB，这张照片未保存，请压缩后重新选择"
VISIT_PHOTOS_RESELECT = (
    "照片合计超过{total}MB（每张不超过{each}MB），检查记录尚未保存。"
    "已填写的内容都已保留，请重新选择照片后提交。"
)
# a text field of the visit form past its limit (only a crafted or pasted one: the
# page's maxlength stops typing), read no further
VISIT_FIELD_TOO_LONG = "填写的内容过长（每项最多1000字），检查记录尚未保存，请删减后重新提交。"
# the photos being sent to the server at once fill the room it gives them on disk
VISIT_SPOOL_FULL = "服务器暂时无法接收更多照片，这张照片未保存，请稍后重新选择"
VISIT_PHOTOS_NOT_RECEIVED = (
    "服务器暂时无法接收更多照片，检查记录尚未保存。已填写的内容都已保留，请稍后重新选择照片后提交。"
)
# every slot for writing a visit's photos stayed taken while this visit waited
PROOF_WRITERS_BUSY = (
    "同时上传照片的人较多，整改材料尚未提交。填写的说明已保留，请稍后重新选择照片后提交。"
)
VISIT_WRITERS_BUSY = (
    "同时保存检查记录的人较多，本次检查记录尚未保存。已填写的内容都已保留，"
    "请稍后重新选择照片后提交。"
)
# the visit form's body stopped arriving (web/middleware.py BodyPace): what came is shown
VISIT_UPLOAD_STALLED = (
    "网络中断或太慢，照片没有收全，检查记录尚未保存。已收到的填写内容已保留，"
    "请在网络良好时重新选择照片后提交。"
)
VISIT_TOO_LARGE = (
    "提交的内容超过{limit}MB，检查记录尚未保存：照片每张不超过{each}MB、合计不超过{total}MB，"
    "请压缩照片后重新填写提交。"
)
BAD_DATE = "日期格式不正确（如2026-06-01）"
# `last` as a_day writes it (the pages' 2027年11月29日), that day itself allowed
DEADLINE_TOO_FAR = "整改期限最长为{days}天，请填写不晚于{last}的日期"
STAFF_BAD_INPUT = "输入有误，请检查"
BAD_REGION = "没有这个地区，请从列表中选择"
REGION_OUTSIDE_AREA = "所选地区不在您的辖区内，只能查看本辖区的记录和统计"
REGION_UNKNOWN = "访问令牌的辖区不是本地的镇街或县（市、区）"
QUEUE_FOR_INSPECTORS = "复查队列仅供检查人员使用"
PAGES_FOR_EXPERTS = "该页面仅供专家使用"


# A move an order's or a ticket's state machine does not allow (FAILED_PRECONDITION):
# what it is now and what was asked, in the words the pages use (review 72: this reached
# booking's callers as "action recheck_pass is not allowed for a ticket that is verified")
MOVE_NOT_ALLOWED = "{record}当前为“{status}”，不能{action}"
ORDER_RECORD = "该预约单"
TICKET_RECORD = "该整改单"
ORDER_STATUS_NAMES = {
    "submitted": "已提交，待派单",
    "dispatched": "已派单",
    "visited": "专家已上门",
    "closed": "已办结",
    "cancelled": "已取消",
}
ORDER_ACTION_NAMES = {
    "dispatch": "派单",
    "record_visit": "登记上门检查",
    "close": "办结",
    "cancel": "取消",
    "unassign": "退回待派单",
}
TICKET_STATUS_NAMES = {"open": "待整改", "submitted": "已提交", "verified": "复查通过"}
TICKET_ACTION_NAMES = {
    "submit_proof": "提交整改材料",
    "recheck_pass": "复查通过",
    "recheck_fail": "复查不通过",
}


def move_refusal(
    record: str, status_names: dict[str, str], action_names: dict[str, str]
) -> Callable[[StrEnum, StrEnum], str]:
    """A state machine's refusal (`StateMachine(refusal=…)`): MOVE_NOT_ALLOWED for the
    record, its status and the action asked, each in the pages' words."""

    def refused(current: StrEnum, action: StrEnum) -> str:
        return MOVE_NOT_ALLOWED.format(
            record=record, status=status_names[current.value], action=action_names[action.value]
        )

    return refused


# a visit's findings and photos past their limits (review 72: English before)
FINDING_TOO_MANY_PHOTOS = "每项隐患最多{n}张照片"
