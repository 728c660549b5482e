"""Every sentence booking shows a person, in Chinese, in one place (pure).

Form errors on the phone page and in the firm's own gRPC calls (its QR token calls:
CreateOrder, GetOrder, CancelOrder, SubmitRectification), the pages' titles and
explanations, the reasons written into an order's or a ticket's history, the poster.
Names of values (statuses, severities, domains) are labels: entrypoints/web/labels.py
and services/common/vocabulary.py.
"""

from __future__ import annotations

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
BAD_PHONE = "请填写11位手机号码（以1开头）"
NOTE_TOO_LONG = "备注最多{n}个字"
CONTROL_CHARACTERS = "不能包含不可见的控制字符"
BAD_IDEMPOTENCY_KEY = "缺少或过长的防重复提交编号（最多{n}个字符）"
FORM_EXPIRED = "页面已过期，请核对后重新提交"
CANCEL_REASON_TOO_LONG = "取消原因最多{n}个字"

# ---------------------------------------------------------------- proof of fix
NO_PHOTO = "请上传整改后的照片（JPEG或PNG）"
PHOTO_TOO_LARGE = "照片不能超过5MB"
PHOTO_NOT_IMAGE = "只接受JPEG或PNG格式的照片"
UPLOAD_FAILED = "上传失败，请重新选择一张照片"
PROOF_TOO_LONG = "说明最多{n}个字"
ALREADY_VERIFIED = "该整改单已复查通过，无需再提交"

# ---------------------------------------------------------------- QR codes
QR_INVALID = "二维码无效（{reason}）"
QR_REJECTED = {
    "malformed": "格式不正确",
    "unknown key": "签名密钥未知",
    "bad signature": "签名不符",
}
QR_REVOKED = "二维码已失效，请使用最新张贴的二维码"

# ---------------------------------------------------------------- history and dispatch
ORDER_TAKEN = "扫码点单"
CANCELLED_BY_FIRM = "企业取消"
DISPATCHED_TO = "派单给专家 {expert}，{slot}"
NO_EXPERT = "暂无可派专家（所选时段内没有空闲的对口专家），有空闲时将自动派单"
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
PAGE_TOO_LARGE = ("提交的内容太大", "照片不能超过5MB，请压缩后重新上传。")
PAGE_NO_SUCH_PAGE = ("页面不存在", "没有找到您要访问的页面。")
PAGE_METHOD = ("不支持的操作", "请返回上一页重试。")
PAGE_HTTP_ERROR = ("请求有误", "请返回上一页重试。")
PAGE_CRASHED = ("系统出错了", "很抱歉，请稍后再试；问题已记录。")
PAGE_NO_REGION = (
    "没有这个地区",
    "“{region}”不是本地的镇街或县（市、区）。请填写名称（如稠城街道、义乌市）"
    "或行政区划代码（如330782001、330782）{hint}",
)
NEAREST_REGIONS = "；是否要找：{names}"
STAFF_ONLY = "需要监管人员凭证"

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
SIGN_IN_BAD_PHONE = "请填写11位手机号码（以1开头）"
SIGN_IN_BAD_CODE_FORMAT = "请填写6位数字验证码"
SIGN_IN_WRONG_CODE = "验证码错误或已过期，请重新输入或重新获取"
SIGN_IN_TOO_MANY_TRIES = "验证码输错次数过多，请重新获取验证码"
SIGN_IN_TOO_MANY_CODES = "获取验证码太频繁，请稍后再试"
SIGN_IN_NEEDS_SESSION = "此操作需要企业本人登录（凭二维码只能预约和查看预约编号）"
SIGN_IN_PHONE_SET = "登录手机已更新"
SIGN_IN_NO_QR_CODE = "该企业尚未生成二维码，请先生成二维码"
SIGN_IN_OWN_ORDERS_ONLY = "只能查看本企业的预约"
NOT_YOURS = "该{what}不属于本企业"
NO_SUCH_RECORD = "没有找到{what}：{ref}"
RECORD_WORDS = {"order": "预约", "ticket": "整改单", "photo": "照片"}
NEEDS_QR_TOKEN = "此操作需要企业的二维码或工作人员凭证"
TOO_MANY_ORDERS = "该二维码预约太频繁，请稍后再试"
SMS_CODE_TEXT = "【安全生产扫码点单】您的登录验证码为{code}，10分钟内有效。请勿告诉他人。"
STATUS_UNAVAILABLE = "暂时无法获取企业状态（规则服务不可用），您仍可以预约专家。"
STATUS_WHITELIST = "已列入白名单：无事不扰（有效期至{until}）"
STATUS_ROUTINE = "常规监管（双随机抽查）"
STATUS_PRIORITY = "重点监管"
BOOK_FOR_THIS = "预约专家帮我整改"
REFS_PRIVATE = "预约会附上对应的条款，仅您和上门专家可见，不计入监管统计。"
SELF_CHECK_NOTE = "自查结果只显示给您本人：不保存、不上报，不作为处罚依据（容错式指导）。"
SELF_CHECK_NONE = "按您的回答，未发现隐患。"
SELF_CHECK_NONE_UNANSWERED = "您没有回答任何问题；按本企业已登记的情况，未发现隐患。"
SELF_CHECK_BASIS_ANSWERS = "结果按您的回答和本企业已登记的情况得出。"
SELF_CHECK_BASIS_RECORD = "您没有回答任何问题：以下结果仅按本企业已登记的情况得出。"
SELF_CHECK_BAD_NUMBER = "请填写数字"
SELF_CHECK_BAD_YES_NO = "请选择“是”或“否”"
BLOCKER_SENTENCES = {
    "recent_penalty": "{arose} 受到行政处罚，{ends}起不再影响白名单",
    "recent_accident": "{arose} 发生生产安全事故，{ends}起不再影响白名单",
    "late_rectification": "{arose} 隐患逾期才整改完毕，{ends}起不再影响白名单",
    "open_hazard": "自{arose}起有隐患未经复查验收：整改并复查通过后不再影响白名单",
    "revoked_by_event": "{arose} 白名单因事件撤销：{reason}",
}
POSTER_CHECKLIST = "本企业适用的重大事故隐患自查清单"
POSTER_CHECKLIST_MORE = "……另有{n}项，扫码查看"
POSTER_CHECKLIST_NONE = "（暂无适用的重大事故隐患判定条款）"
