# ruff: noqa: E501  (Korean text: each syllable is two columns wide)
"""Writes korean-long.json (SQuAD format): 50 long Korean documents and their questions, a harder
Korean retrieval set than korean-qa.json.

What makes it hard, on purpose:
- Realistic length and shape: 2,000-10,000 characters, 5-9 sections with headings, five kinds of
  document (staff handbooks, product manuals, quarterly reports, facility guides, regional articles
  in an encyclopedia's style). Ten documents of each kind share their vocabulary and layout, as
  handbooks of ten companies or manuals of ten models do, so the right document must be told apart
  from nine look-alikes by its name and the right passage from long sections of its own boilerplate.
- Facts sit at random depths of long sections, between filler sentences written from templates of
  the same domain (not lorem ipsum: they use the same words as the facts).
- Questions are paraphrases: they name the subject but ask with other words than the passage
  ("연차 휴가가 부여된다" / "1년에 쉴 수 있는 날"), and a quarter of them drop or add spaces
  ("재택근무는주몇회" ...) or change particles, as people type.
- Gold answers are spans of the document with their context (e.g. "매년 17일"), and the evaluation
  counts a hit only in a passage of the question's own document.
Deterministic (seeded): `python tests/data/make_korean_long.py` rewrites tests/data/korean-long.json.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 17
OUT = Path(__file__).with_name("korean-long.json")

COMPANIES = [
    "한빛전자",
    "새솔물산",
    "푸른바다해운",
    "다온소프트",
    "미르건설",
    "가람식품",
    "누리통신",
    "별빛제약",
    "도담금융",
    "해솔에너지",
]
PRODUCTS = [
    "HX-200 공기청정기",
    "아쿠아9 정수기",
    "CL-77 로봇청소기",
    "웜스팀 S3 가습기",
    "쿨맥스 Q5 제습기",
    "브레오 T1 전기레인지",
    "누비 M2 무선청소기",
    "솔라빔 P4 프로젝터",
    "휘바 W8 세탁기",
    "라온 K3 커피메이커",
]
FIRMS = [
    "동해바이오",
    "서림테크",
    "온누리유통",
    "청람모빌리티",
    "가온반도체",
    "하람게임즈",
    "비채화학",
    "나래항공",
    "슬기교육",
    "마루로보틱스",
]
FACILITIES = [
    "시립 중앙도서관",
    "한결 스포츠센터",
    "늘봄 어린이병원",
    "은하수 과학관",
    "소망 복지관",
    "푸름 수영장",
    "바른 평생학습관",
    "다솜 미술관",
    "한울 시민회관",
    "새움 청소년수련관",
]
REGIONS = ["솔뫼군", "가람시", "달빛군", "물안시", "한내군", "새벌시", "구름군", "바우시", "너울군", "들녘시"]

NAMES = [
    "김서연",
    "이도윤",
    "박지호",
    "최하은",
    "정민준",
    "강서진",
    "조은우",
    "윤지아",
    "장현우",
    "임수빈",
    "한예준",
    "오채원",
    "서지훈",
    "신유나",
    "권태윤",
    "황보람",
]


def pick(rng, options):
    return rng.choice(options)


# Each kind: sections of (heading, [fact, ...], [filler template, ...]).
# A fact is (sentence template, answer template, [question templates]); templates see the doc's values.
HANDBOOK = [
    (
        "근무 시간과 출퇴근",
        [
            (
                "{e}의 기본 근무 시간은 오전 {start}시부터 오후 {end}시까지이며, 점심시간은 1시간이다.",
                "오전 {start}시부터 오후 {end}시까지",
                ["{e} 직원은 몇 시부터 몇 시까지 일하나요?", "{e}에서 하루 업무는 언제 시작해서 언제 끝나?"],
            ),
            (
                "시차 출퇴근제를 쓰는 직원은 핵심 근무 시간인 오전 {core}시부터 오후 3시까지 반드시 자리에 있어야 한다.",
                "오전 {core}시부터 오후 3시까지",
                [
                    "{e}에서 유연근무를 하더라도 꼭 근무해야 하는 시간대는?",
                    "{e} 시차 출퇴근 때 필수로 있어야 하는 시간은 언제야?",
                ],
            ),
        ],
        [
            "출퇴근 기록은 사내 근태 시스템에 자동으로 남으며, 기록이 누락된 경우 {days}일 안에 소속 팀장에게 정정을 요청한다.",
            "근무 시간 중 외근이나 외부 미팅이 있을 때에는 일정과 장소를 팀 일정표에 미리 적어 둔다.",
            "야간이나 휴일에 근무한 시간은 근로기준법에 따라 가산 수당을 계산하여 다음 달 급여에 반영한다.",
            "업무 특성상 교대 근무를 하는 부서는 부서별 근무표를 따르며, 근무표는 매월 {days}일 전에 공지된다.",
        ],
    ),
    (
        "휴가와 휴직",
        [
            (
                "입사 후 1년이 지난 직원에게는 매년 {leave}일의 연차 휴가가 부여된다.",
                "매년 {leave}일",
                [
                    "{e}에서 1년 넘게 다닌 사람은 한 해에 쉴 수 있는 날이 며칠이에요?",
                    "{e} 연차는 일 년에 얼마나 나오나요?",
                ],
            ),
            (
                "연차 휴가를 쓰려면 사용 예정일 {notice}일 전까지 인사 포털에서 신청해야 한다.",
                "{notice}일 전까지",
                ["{e}에서 휴가를 가려면 언제까지 신청해야 돼요?", "{e} 휴가 신청 마감은 사용일 기준 며칠 전이야?"],
            ),
            (
                "사용하지 못한 연차는 다음 해 {carry}월 말일까지 이월할 수 있으며 그 이후에는 소멸된다.",
                "다음 해 {carry}월 말일까지",
                ["{e}에서 남은 연차를 넘겨 쓸 수 있는 기한은?", "{e}의 못 쓴 휴가는 언제 사라지나요?"],
            ),
            (
                "배우자가 출산한 직원은 유급으로 {paternity}일의 출산 휴가를 받는다.",
                "유급으로 {paternity}일",
                ["{e}에서 아내가 아이를 낳으면 남편은 며칠 쉴 수 있어요?", "{e} 배우자 출산 시 주어지는 휴가 일수는?"],
            ),
        ],
        [
            "휴가 중 긴급한 업무가 생기면 대리 업무자가 먼저 처리하고, 처리 결과를 복귀한 직원에게 메일로 전달한다.",
            "병가를 사흘 이상 쓰는 경우에는 의사의 진단서를 인사팀에 제출해야 한다.",
            "경조사 휴가는 사유가 발생한 날로부터 {days}일 이내에 사용해야 하며 나누어 쓸 수 없다.",
            "휴직을 원하는 직원은 휴직 사유와 기간을 적은 신청서를 인사팀에 내고 대표이사의 승인을 받는다.",
            "휴가 일정은 팀 안에서 겹치지 않도록 조정하며, 성수기에는 팀장이 순서를 정할 수 있다.",
        ],
    ),
    (
        "급여와 복리후생",
        [
            (
                "급여는 매월 {payday}일에 지급되며, 지급일이 휴일이면 그 전날 지급한다.",
                "매월 {payday}일",
                ["{e} 월급날은 며칠이에요?", "{e}에서 임금이 들어오는 날짜는?"],
            ),
            (
                "모든 직원에게는 연 {welfare}만 원의 복지 포인트가 지급되어 도서, 운동, 여행 등에 쓸 수 있다.",
                "연 {welfare}만 원",
                ["{e} 복지포인트는 1년에 얼마 받나요?", "{e} 직원이 운동이나 책에 쓸 수 있게 주는 돈은 한 해 얼마야?"],
            ),
            (
                "직원의 자녀가 대학에 입학하면 한 학기에 최대 {tuition}만 원의 학자금을 지원한다.",
                "최대 {tuition}만 원",
                ["{e}에서 대학생 자녀 등록금은 한 학기에 얼마까지 도와줘요?", "{e} 자녀 학비 지원 한도는?"],
            ),
        ],
        [
            "급여 명세서는 지급일 아침에 사내 메일로 발송되며, 지난 명세서는 인사 포털에서 다시 볼 수 있다.",
            "건강검진은 매년 한 번 회사가 지정한 병원에서 받을 수 있고, 비용은 회사가 전액 부담한다.",
            "복리후생 제도의 세부 기준은 매년 초 노사협의회에서 정하며, 변경 내용은 사내 게시판에 공지한다.",
            "직원 식당은 평일 점심과 저녁에 운영되며, 식비의 절반은 회사가 지원한다.",
            "사내 동호회는 다섯 명 이상이 모이면 만들 수 있고, 활동비 일부를 회사에서 지원받는다.",
        ],
    ),
    (
        "출장과 경비",
        [
            (
                "국내 출장의 숙박비는 1박에 {hotel}만 원까지 실비로 지원된다.",
                "1박에 {hotel}만 원까지",
                ["{e}에서 지방 출장 가면 호텔비는 하룻밤에 얼마까지 나와요?", "{e} 국내 출장 숙박 한도는?"],
            ),
            (
                "출장 경비는 출장이 끝난 날부터 {settle}일 이내에 영수증과 함께 경비 시스템으로 정산한다.",
                "{settle}일 이내",
                ["{e}에서 출장비 정산은 다녀와서 며칠 안에 해야 하나요?", "{e} 출장 다녀온 뒤 경비 처리 기한은?"],
            ),
        ],
        [
            "해외 출장은 출발 2주 전까지 출장 계획서를 올리고 본부장의 결재를 받아야 한다.",
            "법인카드는 업무와 관련된 비용에만 쓸 수 있으며, 개인 용도로 쓴 금액은 즉시 반납해야 한다.",
            "출장 중 교통편은 가능한 한 대중교통을 이용하고, 택시는 심야나 짐이 많을 때에만 이용한다.",
            "출장 보고서는 복귀 후 일주일 안에 팀 문서함에 올리고 관련 부서에 공유한다.",
        ],
    ),
    (
        "보안과 장비",
        [
            (
                "사내 시스템의 비밀번호는 {pw}일마다 바꿔야 하며 이전에 쓴 비밀번호는 다시 쓸 수 없다.",
                "{pw}일마다",
                ["{e}에서 로그인 암호는 얼마나 자주 변경해야 돼요?", "{e} 비밀번호 교체 주기는?"],
            ),
            (
                "노트북을 잃어버린 직원은 즉시 정보보안팀 {person} 책임에게 알려야 한다.",
                "{person} 책임",
                [
                    "{e}에서 회사 노트북을 분실하면 누구한테 연락하나요?",
                    "{e} 업무용 컴퓨터를 잃어버렸을 때 보고할 담당자는?",
                ],
            ),
        ],
        [
            "외부 저장 장치는 정보보안팀에 등록한 것만 사용할 수 있다.",
            "자리를 비울 때에는 화면을 잠그고, 중요한 서류는 잠금장치가 있는 서랍에 보관한다.",
            "방문객은 안내 데스크에서 출입증을 받아야 하며, 직원이 동행해야 사무 공간에 들어올 수 있다.",
            "보안 교육은 매년 상반기에 온라인으로 진행되며 모든 직원이 이수해야 한다.",
            "의심스러운 메일을 받으면 첨부 파일을 열지 말고 정보보안팀에 신고한다.",
        ],
    ),
]

MANUAL = [
    (
        "제품 구성과 설치",
        [
            (
                "{e}의 본체 무게는 {weight}kg이며, 벽에서 최소 {gap}cm 떨어뜨려 설치해야 한다.",
                "최소 {gap}cm",
                ["{e}{은} 벽과 얼마나 띄워서 놓아야 하나요?", "{e} 설치할 때 벽과의 간격은?"],
            ),
            (
                "{e}{은} 정격 전압 220V, 소비 전력 {watt}W로 동작한다.",
                "소비 전력 {watt}W",
                ["{e} 전기는 몇 와트나 먹어요?", "{e}의 전력 소모량은?"],
            ),
        ],
        [
            "포장을 풀면 본체, 전원 코드, 사용 설명서, 품질 보증서가 들어 있는지 확인한다.",
            "제품을 옮길 때에는 양손으로 본체 아래쪽을 잡고, 손잡이만 잡아 들지 않는다.",
            "직사광선이 드는 곳이나 난방 기구 가까이에 설치하면 외관이 변형될 수 있다.",
            "바닥이 기울어진 곳에 두면 진동과 소음이 커질 수 있으므로 평평한 곳에 설치한다.",
            "설치 후 전원 코드를 꽂기 전에 본체 뒷면의 운반용 고정 테이프를 모두 떼어 낸다.",
        ],
    ),
    (
        "사용 방법",
        [
            (
                "전원 버튼을 {hold}초 동안 누르면 자녀 보호 잠금이 켜지거나 꺼진다.",
                "{hold}초 동안",
                ["{e}에서 어린이 잠금을 풀려면 버튼을 얼마나 눌러야 돼?", "{e} 잠금 기능 켜는 방법은 전원 버튼 몇 초?"],
            ),
            (
                "예약 기능으로 최대 {timer}시간 뒤에 자동으로 꺼지도록 설정할 수 있다.",
                "최대 {timer}시간",
                ["{e} 꺼짐 예약은 몇 시간까지 걸 수 있어요?", "{e}의 타이머 최장 설정 시간은?"],
            ),
            (
                "절전 모드에서는 화면 밝기가 줄고 소음이 {db}dB 이하로 낮아진다.",
                "{db}dB 이하",
                ["{e} 조용한 모드로 두면 소리가 몇 데시벨까지 줄어요?", "{e} 절전모드의 소음 수준은?"],
            ),
        ],
        [
            "처음 켜면 약 10초 동안 자가 진단을 하며, 이때 표시등이 차례로 깜박인다.",
            "조작부의 모드 버튼을 누를 때마다 자동, 강, 약, 취침 순서로 바뀐다.",
            "스마트폰 앱과 연결하면 외출 중에도 운전 상태를 확인하고 설정을 바꿀 수 있다.",
            "사용 중 정전이 되면 전원이 다시 들어온 뒤 직전 설정으로 다시 운전을 시작한다.",
            "표시창의 숫자는 현재 설정 값을 나타내며, 설정을 바꾸면 3초 뒤에 저장된다.",
        ],
    ),
    (
        "청소와 관리",
        [
            (
                "필터는 {filter}개월마다 교체하는 것이 좋으며, 교체 시기가 되면 필터 표시등이 주황색으로 켜진다.",
                "{filter}개월마다",
                ["{e} 필터는 얼마 만에 갈아야 하나요?", "{e}의 필터 교환 주기는?"],
            ),
            (
                "본체 외부는 마른 천으로 닦고, 물통은 {wash}일에 한 번 미지근한 물로 씻는다.",
                "{wash}일에 한 번",
                ["{e} 물탱크는 며칠에 한 번 세척해요?", "{e}의 물통 청소는 얼마나 자주 해야 해?"],
            ),
        ],
        [
            "청소하기 전에는 반드시 전원을 끄고 전원 플러그를 뽑는다.",
            "벤젠이나 신너 같은 화학 약품은 표면을 상하게 하므로 쓰지 않는다.",
            "흡입구와 배출구에 먼지가 쌓이면 성능이 떨어지므로 부드러운 솔로 털어 낸다.",
            "장기간 사용하지 않을 때에는 물을 모두 비우고 충분히 말린 뒤 비닐을 씌워 보관한다.",
            "교체용 부품은 공식 서비스 센터나 온라인 매장에서 구입할 수 있다.",
        ],
    ),
    (
        "문제 해결",
        [
            (
                "표시창에 {code} 오류가 나타나면 전원을 끄고 30분 뒤에 다시 켠다.",
                "{code} 오류",
                [
                    "{e}{를} 30분 꺼 두었다가 다시 켜야 하는 에러 코드는 뭐예요?",
                    "{e}에서 잠시 껐다 켜라고 안내된 오류 표시는?",
                ],
            ),
            (
                "계속 문제가 생기면 고객센터 {phone}로 연락하면 평일 오전 9시부터 오후 6시까지 상담을 받을 수 있다.",
                "{phone}",
                ["{e} 고장 상담 전화번호는?", "{e} 서비스 센터에 연락하려면 몇 번으로 걸어요?"],
            ),
        ],
        [
            "전원이 켜지지 않으면 플러그가 콘센트에 제대로 꽂혀 있는지 먼저 확인한다.",
            "이상한 냄새가 나면 새 필터의 보호 비닐을 벗겼는지 확인하고 창문을 열어 환기한다.",
            "소음이 심해지면 제품이 평평한 곳에 놓여 있는지, 뒤쪽이 벽에 닿아 있지 않은지 살핀다.",
            "물이 새는 경우에는 물통의 뚜껑이 제대로 닫혔는지, 패킹이 빠지지 않았는지 확인한다.",
        ],
    ),
    (
        "품질 보증",
        [
            (
                "이 제품의 무상 보증 기간은 구입일로부터 {warranty}년이며, 모터는 {motor}년까지 보증한다.",
                "{motor}년까지",
                ["{e} 모터는 몇 년 동안 공짜로 고쳐 주나요?", "{e}의 모터 보증 기간은?"],
            ),
        ],
        [
            "소비자의 과실이나 천재지변으로 고장 난 경우에는 보증 기간 안이라도 유상으로 수리한다.",
            "보증 서비스를 받으려면 구입 영수증이나 품질 보증서를 함께 제시해야 한다.",
            "부품 보유 기간은 제품 생산 중단 후 7년이며, 이 기간 안에는 수리를 받을 수 있다.",
            "제품을 임의로 분해하거나 개조한 경우에는 보증 서비스를 받을 수 없다.",
        ],
    ),
]

REPORT = [
    (
        "실적 요약",
        [
            (
                "{e}의 3분기 매출은 {rev}억 원으로 전년 같은 기간보다 {growth}% 늘었다.",
                "{rev}억 원",
                ["{e}{은} 올해 7월부터 9월까지 얼마를 벌었나요?", "{e} 3분기 매출액은?"],
            ),
            (
                "영업이익은 {op}억 원을 기록해 영업이익률이 {margin}%에 이르렀다.",
                "영업이익률이 {margin}%",
                ["{e}의 매출 대비 영업이익 비율은 얼마였어?", "{e} 이번 분기 이익률은 몇 퍼센트인가요?"],
            ),
        ],
        [
            "이번 분기 실적은 주력 제품의 판매 증가와 원가 절감 노력이 함께 반영된 결과이다.",
            "환율 변동에 따른 영향은 전 분기보다 줄었으나, 원자재 가격 상승은 여전히 부담으로 작용했다.",
            "회사는 하반기에도 수익성 중심의 경영 기조를 유지하고 비용 구조를 계속 개선할 계획이다.",
            "지역별로는 국내 매출이 안정적으로 유지되었고, 해외 매출의 비중이 조금씩 커지고 있다.",
            "이 보고서의 수치는 외부 감사인의 검토를 받기 전의 잠정 실적이며 확정 과정에서 달라질 수 있다.",
        ],
    ),
    (
        "사업 부문별 현황",
        [
            (
                "가장 큰 사업 부문인 {seg} 부문이 전체 매출의 {share}%를 차지했다.",
                "{seg} 부문",
                ["{e}에서 매출 비중이 제일 높은 사업은 어디예요?", "{e}의 주력 사업부는 무엇인가요?"],
            ),
            (
                "신규 사업으로 시작한 {newbiz} 사업은 이번 분기 처음으로 흑자를 냈다.",
                "{newbiz} 사업",
                ["{e}{가} 새로 벌인 일 중에서 이번에 처음 이익을 낸 분야는?", "{e}의 신사업 가운데 흑자 전환한 것은?"],
            ),
        ],
        [
            "각 부문은 연초에 세운 목표를 기준으로 매달 성과를 점검하고 있다.",
            "부문 간 중복된 조직을 정리하여 의사 결정 단계를 줄였다.",
            "해외 법인은 현지 인력을 중심으로 영업망을 넓히고 있으며 주요 거래처와의 계약을 갱신했다.",
            "연구개발 부문은 차세대 제품의 시제품을 완성하고 고객 시험을 준비하고 있다.",
        ],
    ),
    (
        "투자와 인력",
        [
            (
                "회사는 {plant} 공장 증설에 {capex}억 원을 투자하기로 했으며 완공 목표는 {year}년이다.",
                "{capex}억 원",
                ["{e}{은} {plant} 공장을 넓히는 데 돈을 얼마나 쓰나요?", "{e} 공장 증설 투자 금액은?"],
            ),
            (
                "분기 말 기준 임직원 수는 {staff}명으로 지난 분기보다 {hire}명 늘었다.",
                "{staff}명",
                ["{e}의 현재 직원은 모두 몇 명이에요?", "{e} 분기 말 임직원 규모는?"],
            ),
        ],
        [
            "투자 재원은 영업 현금 흐름과 일부 차입금으로 마련할 예정이다.",
            "채용은 연구개발과 품질 관리 직군을 중심으로 진행되었다.",
            "직원 교육 예산을 늘려 직무 교육과 외국어 교육 과정을 새로 만들었다.",
            "설비 투자는 단계적으로 진행되며, 시장 상황에 따라 일정이 조정될 수 있다.",
        ],
    ),
    (
        "재무 상태",
        [
            (
                "부채비율은 {debt}%로 전 분기 말보다 낮아졌다.",
                "{debt}%",
                ["{e}의 빚이 자본에 비해 어느 정도인가요, 몇 퍼센트?", "{e} 분기 말 부채 비율은?"],
            ),
            (
                "이사회는 주당 {div}원의 분기 배당을 결의했다.",
                "주당 {div}원",
                ["{e} 주식을 가진 사람은 한 주에 얼마를 배당받아요?", "{e}{가} 이번에 정한 배당금은 주당 얼마?"],
            ),
        ],
        [
            "현금성 자산은 운전 자본 증가로 소폭 줄었으나 충분한 수준을 유지하고 있다.",
            "차입금의 만기는 대부분 2년 이후로 분산되어 있어 상환 부담이 크지 않다.",
            "회사는 신용 등급을 유지하기 위해 재무 건전성 관리에 힘쓰고 있다.",
        ],
    ),
    (
        "전망과 위험 요인",
        [
            (
                "회사는 4분기 매출을 {guide}억 원 안팎으로 예상한다.",
                "{guide}억 원 안팎",
                ["{e}{은} 올해 마지막 분기에 얼마쯤 팔 것으로 보나요?", "{e}의 4분기 매출 전망치는?"],
            ),
        ],
        [
            "경기 둔화와 금리 변동은 수요에 영향을 줄 수 있는 주요 위험 요인이다.",
            "경쟁사의 가격 인하가 이어질 경우 수익성이 낮아질 가능성이 있다.",
            "회사는 위험 요인을 정기적으로 점검하고 대응 계획을 마련해 두고 있다.",
            "이 전망은 현재 시점의 정보에 기초한 것으로 실제 결과와 다를 수 있다.",
        ],
    ),
]

FACILITY = [
    (
        "이용 시간",
        [
            (
                "{e}{은} 평일 오전 {open}시부터 오후 {close}시까지 문을 연다.",
                "오전 {open}시부터 오후 {close}시까지",
                ["{e} 주중에는 몇 시에 열고 몇 시에 닫아요?", "{e}의 평일 운영 시간은?"],
            ),
            (
                "정기 휴관일은 매월 {nth}째 주 {weekday}이다.",
                "{nth}째 주 {weekday}",
                ["{e}{가} 쉬는 날은 언제예요?", "{e} 문 닫는 날이 매달 언제야?"],
            ),
        ],
        [
            "공휴일에는 단축 운영하며 자세한 시간은 홈페이지의 공지 사항에서 확인할 수 있다.",
            "운영 시간이 끝나기 30분 전에는 입장을 마감한다.",
            "시설 점검이나 행사가 있는 날에는 일부 공간의 이용이 제한될 수 있다.",
            "명절 연휴 기간의 운영 여부는 매년 따로 안내한다.",
        ],
    ),
    (
        "이용 요금과 회원",
        [
            (
                "성인 1회 이용료는 {fee}원이며, 65세 이상은 절반을 낸다.",
                "{fee}원",
                ["{e} 어른 한 번 들어가는 값은 얼마예요?", "{e}의 성인 입장료는?"],
            ),
            (
                "회원증은 신분증을 가지고 {desk}에 방문하면 바로 만들 수 있다.",
                "{desk}",
                ["{e} 회원 카드는 어디서 발급받아요?", "{e}에서 회원증 만들려면 어디로 가야 돼?"],
            ),
        ],
        [
            "장애인과 국가유공자는 증빙 서류를 내면 요금을 감면받을 수 있다.",
            "회원 정보가 바뀌면 온라인이나 방문으로 변경 신청을 한다.",
            "이용료는 현금과 카드로 낼 수 있으며 지역 화폐도 사용할 수 있다.",
            "환불은 이용 시작 전까지 전액 가능하고, 그 이후에는 이용한 만큼을 빼고 돌려준다.",
        ],
    ),
    (
        "시설 안내",
        [
            (
                "주차장은 지하 {floors}층까지 있으며 이용자는 {park}시간까지 무료로 주차할 수 있다.",
                "{park}시간까지 무료",
                ["{e}에 차를 대면 몇 시간 동안 돈을 안 내요?", "{e}의 무료 주차 시간은?"],
            ),
            (
                "{room}은 {cap}명까지 들어갈 수 있으며 일주일 전부터 예약을 받는다.",
                "{cap}명까지",
                ["{e}의 {room}에는 최대 몇 명이 들어가요?", "{e} {room} 정원은?"],
            ),
        ],
        [
            "건물 안에서는 지정된 장소 외에 음식물을 먹을 수 없다.",
            "엘리베이터는 건물 양쪽 끝에 있으며 휠체어 이용자를 위한 경사로가 설치되어 있다.",
            "분실물은 안내 데스크에서 한 달 동안 보관한 뒤 경찰서에 넘긴다.",
            "모든 층에 정수기와 휴게 공간이 마련되어 있다.",
            "건물 전체에서 무선 인터넷을 무료로 쓸 수 있다.",
        ],
    ),
    (
        "프로그램",
        [
            (
                "{prog} 강좌는 매주 {day}요일 오후에 열리며 한 학기 수강료는 {tuition}원이다.",
                "{tuition}원",
                ["{e} {prog} 수업은 한 학기에 얼마 내야 해요?", "{e}의 {prog} 강좌 수강료는?"],
            ),
            (
                "프로그램 신청은 매 학기 시작 {apply}주 전부터 온라인으로 받는다.",
                "{apply}주 전부터",
                ["{e} 강좌 접수는 언제부터 해요?", "{e} 프로그램 신청 시작 시점은 학기 몇 주 전?"],
            ),
        ],
        [
            "신청자가 정원보다 많으면 추첨으로 수강생을 정한다.",
            "강좌는 최소 인원이 모이지 않으면 폐강될 수 있으며 수강료는 전액 돌려준다.",
            "수강생은 출석률이 80퍼센트를 넘으면 수료증을 받을 수 있다.",
            "강사 소개와 강의 계획은 홈페이지의 프로그램 안내에서 볼 수 있다.",
        ],
    ),
    (
        "문의",
        [
            (
                "이용 문의는 {phone}로 하면 되고, 담당자는 운영지원팀 {person} 주무관이다.",
                "{person} 주무관",
                ["{e} 운영 관련 담당 공무원은 누구예요?", "{e}에 문의할 때 연결되는 담당자 이름은?"],
            ),
        ],
        [
            "불편 사항은 안내 데스크의 의견함이나 홈페이지 게시판에 남길 수 있다.",
            "답변은 접수일로부터 일주일 안에 문자나 메일로 보내 준다.",
            "단체 방문은 2주 전까지 전화로 미리 신청해야 한다.",
        ],
    ),
]

REGION = [
    (
        "개요",
        [
            (
                "{e}{은} 면적이 {area}제곱킬로미터이고 인구는 약 {pop}명이다.",
                "약 {pop}명",
                ["{e}에는 사람이 몇 명 살아요?", "{e}의 인구 규모는?"],
            ),
            (
                "{e}의 군청 또는 시청은 {seat}에 있다.",
                "{seat}",
                ["{e} 행정 중심지는 어디인가요?", "{e}의 관청이 자리한 곳은?"],
            ),
        ],
        [
            "이 지역은 예로부터 교통의 요지로 여러 지방을 잇는 길목 역할을 했다.",
            "행정 구역은 여러 읍과 면으로 나뉘며 각 지역마다 특색 있는 마을이 자리하고 있다.",
            "주민들은 지역의 자연환경을 지키기 위해 여러 보전 활동을 이어 오고 있다.",
        ],
    ),
    (
        "역사",
        [
            (
                "{e}{이라는} 이름은 {era} 때 처음 기록에 나타난다.",
                "{era} 때",
                ["{e}라는 지명이 문헌에 처음 등장한 시대는?", "{e}의 이름은 언제부터 쓰였나요?"],
            ),
            (
                "{year}년에 큰 홍수가 나서 읍내의 절반이 물에 잠겼고, 이후 {river} 제방이 새로 쌓였다.",
                "{year}년",
                ["{e} 읍내 절반이 침수된 홍수는 몇 년에 있었어?", "{e}에 큰 물난리가 난 해는?"],
            ),
        ],
        [
            "조선 시대에는 관아가 설치되어 주변 고을을 다스렸다.",
            "근대에 들어 철도가 놓이면서 인구가 늘고 시장이 커졌다.",
            "한국 전쟁 때에는 격전지가 되어 많은 건물이 무너졌으나 전쟁 뒤 다시 세워졌다.",
            "옛 관아 터에는 지금 작은 공원과 향토 사료관이 들어서 있다.",
        ],
    ),
    (
        "지리와 기후",
        [
            (
                "가장 높은 산은 해발 {height}미터의 {mount}이다.",
                "{mount}",
                ["{e}에서 제일 높은 봉우리 이름은?", "{e}의 최고봉은 어떤 산이에요?"],
            ),
            (
                "연평균 기온은 섭씨 {temp}도이고 연 강수량은 {rain}밀리미터 정도이다.",
                "섭씨 {temp}도",
                ["{e} 일 년 평균 온도는 몇 도예요?", "{e}의 연평균기온은?"],
            ),
        ],
        [
            "지역의 동쪽은 산지가 많고 서쪽으로 갈수록 넓은 들이 펼쳐진다.",
            "여름에는 비가 집중되고 겨울에는 건조한 북서풍이 분다.",
            "하천을 따라 충적 평야가 발달하여 예로부터 벼농사가 활발했다.",
            "봄과 가을에는 안개가 자주 끼어 아침 교통에 주의가 필요하다.",
        ],
    ),
    (
        "경제와 산업",
        [
            (
                "대표 특산물은 {crop}이며 해마다 {month}월에 {crop} 축제가 열린다.",
                "{crop}",
                ["{e}의 이름난 농산물은 뭐예요?", "{e} 축제의 주인공인 특산품은?"],
            ),
            (
                "{year2}년에 조성된 {park} 산업단지에는 약 {firms}개 기업이 입주해 있다.",
                "약 {firms}개",
                ["{e} {park} 산업단지에 들어온 회사는 몇 곳이에요?", "{e} 산단 입주 업체 수는?"],
            ),
        ],
        [
            "농업 인구는 줄고 있으나 시설 원예와 친환경 농업이 새로운 소득원이 되고 있다.",
            "관광객이 늘면서 숙박업과 음식업에 종사하는 주민도 많아졌다.",
            "지역 농협은 농산물 가공 공장을 세워 특산물로 만든 가공식품을 판매한다.",
            "전통 시장은 닷새마다 장이 서며 인근 지역 사람들도 많이 찾는다.",
        ],
    ),
    (
        "문화와 관광",
        [
            (
                "{temple}{절은} {century}세기에 세워진 절로 지역의 대표 문화유산이다.",
                "{century}세기",
                ["{e}의 {temple}{절은} 언제 지어졌어요?", "{e} {temple} 창건 시기는 몇 세기?"],
            ),
        ],
        [
            "지역 곳곳에는 옛 선비들이 학문을 닦던 서원과 정자가 남아 있다.",
            "해마다 가을에는 주민들이 함께하는 전통 놀이 행사가 열린다.",
            "둘레길이 조성되어 산과 강을 따라 걸으며 경치를 즐길 수 있다.",
            "향토 음식으로는 민물고기 매운탕과 산나물 비빔밥이 알려져 있다.",
        ],
    ),
]

# Boilerplate any section of any kind carries, about its own topic (the heading's first noun phrase).
GENERIC = [
    "{topic}에 관한 세부 기준은 {annex}에 정리되어 있으며 {cycle} 검토를 거쳐 고친다.",
    "{topic}에 대해 궁금한 점이 있으면 {contact}에 문의하면 된다.",
    "{cycle} 실시한 조사에서 {topic}에 대한 만족도는 {pct}퍼센트로 나타났다.",
    "{topic} 기준이 바뀌면 {lead} {channel}에 미리 알린다.",
    "지난해에는 {topic} 관련 문의가 {count}건 접수되었고 대부분 {resolve} 처리되었다.",
    "{topic}의 운영 원칙은 공정성과 투명성이며, 예외는 {approver}의 승인을 받아야 인정된다.",
    "{topic}에 관한 내용은 이 문서의 다른 장과 함께 읽어야 정확히 이해할 수 있다.",
    "{topic} 관련 기록은 {keep}년 동안 보관한 뒤 폐기한다.",
    "{topic}에 관해서는 {approver}의 결정이 이 문서보다 우선한다.",
    "{topic}의 개선 의견은 {channel}에 남길 수 있으며, 채택된 의견은 {cycle} 반영된다.",
    "{topic} 항목은 {year}년에 처음 만들어졌고 그 뒤 여러 차례 손질되었다.",
    "이 장에서 말하는 {topic}의 범위는 {scope}에 한정된다.",
]
SLOTS = {
    "annex": ["부속 지침", "운영 세칙", "별첨 자료", "내부 규정집", "온라인 안내서", "업무 매뉴얼"],
    "cycle": ["매년", "반기마다", "분기마다", "2년마다", "해마다 연말에"],
    "contact": ["담당 부서", "고객 지원 창구", "운영 사무국", "안내 데스크", "민원 상담실"],
    "pct": list(range(61, 97)),
    "channel": ["공지 게시판", "홈페이지", "문자 메시지", "전자 우편", "소식지"],
    "lead": ["한 달 전에", "2주 전에", "열흘 전에"],
    "count": list(range(12, 480)),
    "resolve": ["당일에", "사흘 안에", "일주일 안에", "담당자 확인 뒤에"],
    "approver": ["책임자", "운영위원회", "담당 임원", "심의위원회"],
    "keep": [3, 5, 10],
    "year": list(range(1988, 2021)),
    "scope": ["이 문서가 다루는 대상", "정식으로 등록된 이용자", "본사와 지사", "공식적으로 안내된 항목"],
}


def generic(rng: random.Random, topic: str) -> str:
    return rng.choice(GENERIC).format(topic=topic, **{k: rng.choice(v) for k, v in SLOTS.items()})


KINDS = [
    ("직원 핸드북", COMPANIES, HANDBOOK),
    ("사용 설명서", PRODUCTS, MANUAL),
    ("3분기 실적 보고서", FIRMS, REPORT),
    ("이용 안내", FACILITIES, FACILITY),
    ("지역 개요", REGIONS, REGION),
]


def particles(word: str) -> dict:
    """Particles that fit the word's last syllable: 한빛전자는 / 시립 중앙도서관은."""
    last = word[-1]
    final = "\uac00" <= last <= "\ud7a3" and (ord(last) - 0xAC00) % 28 != 0
    return {
        "은": "은" if final else "는",
        "이라는": "이라는" if final else "라는",
        "를": "을" if final else "를",
        "가": "이" if final else "가",
    }


def temple_particle(v: dict) -> dict:
    return {"절은": particles(v["temple"])["은"]}


def values(rng: random.Random, entity: str) -> dict:
    return {
        **particles(entity),
        "e": entity,
        "start": rng.choice([8, 9]),
        "end": rng.choice([5, 6]),
        "core": rng.choice([10, 11]),
        "days": rng.choice([3, 5, 7]),
        "leave": rng.randint(15, 22),
        "notice": rng.choice([2, 3, 5, 7]),
        "carry": rng.choice([2, 3, 4, 6]),
        "paternity": rng.choice([10, 15, 20]),
        "payday": rng.choice([10, 21, 25]),
        "welfare": rng.choice([80, 100, 120, 150, 200]),
        "tuition": rng.choice([200, 250, 300, 350]) * 1,
        "hotel": rng.choice([8, 10, 12, 15]),
        "settle": rng.choice([5, 7, 10, 14]),
        "pw": rng.choice([30, 60, 90]),
        "person": rng.choice(NAMES),
        "weight": rng.randint(3, 40),
        "gap": rng.choice([10, 15, 20, 30]),
        "watt": rng.choice([35, 48, 60, 120, 1800, 2200]),
        "hold": rng.choice([3, 5]),
        "timer": rng.choice([8, 12, 24]),
        "db": rng.choice([22, 25, 28, 32]),
        "filter": rng.choice([3, 6, 12]),
        "wash": rng.choice([2, 3, 7]),
        "code": rng.choice(["E1", "E3", "E5", "F2", "C4", "H7"]),
        "phone": f"1588-{rng.randint(1000, 9999)}",
        "warranty": 1,
        "motor": rng.choice([3, 5, 10]),
        "rev": rng.randint(300, 9000),
        "growth": rng.randint(2, 30),
        "op": rng.randint(20, 900),
        "margin": f"{rng.randint(3, 18)}.{rng.randint(0, 9)}",
        "seg": rng.choice(["소재", "부품", "플랫폼", "의약품", "물류", "반도체 장비"]),
        "share": rng.randint(40, 70),
        "newbiz": rng.choice(["전기차 충전", "클라우드", "바이오 연료", "헬스케어", "구독형 서비스"]),
        "plant": rng.choice(["구미", "평택", "울산", "천안", "청주", "광양"]),
        "capex": rng.randint(200, 3000),
        "year": rng.choice([2027, 2028, 2029]),
        "staff": rng.randint(300, 12000),
        "hire": rng.randint(10, 300),
        "debt": rng.randint(40, 180),
        "div": rng.choice([100, 150, 200, 300, 500]),
        "guide": rng.randint(300, 9500),
        "open": rng.choice([6, 9, 10]),
        "close": rng.choice([6, 9, 10]),
        "nth": rng.choice(["첫", "둘", "셋", "넷"]),
        "weekday": rng.choice(["월요일", "화요일", "수요일"]),
        "fee": rng.choice([1000, 2000, 3000, 4500, 5000]),
        "desk": rng.choice(["1층 안내 데스크", "2층 회원 지원실", "본관 민원실"]),
        "floors": rng.choice([2, 3, 4]),
        "park": rng.choice([1, 2, 3]),
        "room": rng.choice(["세미나실", "다목적실", "소강당"]),
        "cap": rng.choice([20, 30, 40, 60, 80]),
        "prog": rng.choice(["요가", "서예", "생활 영어", "도자기", "합창", "코딩"]),
        "day": rng.choice(["월", "화", "수", "목", "금"]),
        "apply": rng.choice([1, 2, 3]),
        "area": rng.randint(200, 1200),
        "pop": f"{rng.randint(2, 40)}만 {rng.randint(1, 9)}천",
        "seat": rng.choice(["중앙읍", "남산동", "강변읍", "서문동", "대평면"]),
        "era": rng.choice(["고려 초", "삼국 시대", "고려 말", "조선 초"]),
        "river": rng.choice(["남천", "서강", "큰내", "금강 지류"]),
        "height": rng.randint(600, 1500),
        "mount": rng.choice(["매봉산", "운봉산", "백운산", "수리봉", "황학산"]),
        "temp": f"{rng.randint(9, 14)}.{rng.randint(0, 9)}",
        "rain": rng.randint(1100, 1600),
        "crop": rng.choice(["사과", "인삼", "고추", "배", "딸기", "한우", "곶감"]),
        "month": rng.choice([9, 10, 11]),
        "year2": rng.choice([1995, 2003, 2011, 2016]),
        "firms": rng.randint(40, 400),
        "temple": rng.choice(["운주사", "보광사", "청련사", "용문사", "법화사"]),
        "century": rng.choice([7, 8, 9, 11, 12]),
    }


def vary(rng: random.Random, question: str) -> str:
    """How people type: a quarter of the questions lose or gain spaces, or swap a particle."""
    roll = rng.random()
    words = question.split(" ")
    if roll < 0.1 and len(words) > 2:  # spaces dropped
        i = rng.randrange(len(words) - 1)
        return " ".join(words[:i] + [words[i] + words[i + 1]] + words[i + 2 :])
    if roll < 0.17:
        return question.replace(" ", "", 2)
    if roll < 0.25:
        for a, b in (("은 ", "는 "), ("는 ", "은 "), ("에서 ", "에 "), ("를 ", "을 "), ("의 ", " ")):
            if a in question:
                return question.replace(a, b, 1)
    return question


def document(rng: random.Random, kind: str, entity: str, sections) -> tuple[str, list[tuple[str, str]]]:
    v = values(rng, entity)
    v.update(temple_particle(v))
    target = rng.randint(2000, 10000)
    per_section = target // len(sections)
    parts, questions = [], []
    for n, (heading, facts, fillers) in enumerate(sections, 1):
        topic = heading.split("과 ")[0].split("와 ")[0]
        body = [f.format(**v) for f in fillers]  # the section's own boilerplate once, then generic lines
        rng.shuffle(body)
        seen = set(body)
        while sum(len(s) + 1 for s in body) < per_section:
            line = generic(rng, topic)
            if line not in seen:
                seen.add(line)
                body.insert(rng.randint(0, len(body)), line if rng.random() > 0.15 else f"{entity}에서는 " + line)
        for sentence, answer, asks in facts:
            body.insert(rng.randint(0, len(body)), sentence.format(**v))
            questions.append((vary(rng, rng.choice(asks).format(**v)), answer.format(**v)))
        paragraphs, i = [], 0
        while i < len(body):  # paragraphs of 3-6 sentences
            step = rng.randint(3, 6)
            paragraphs.append(" ".join(body[i : i + step]))
            i += step
        parts.append(f"## {n}. {heading}\n\n" + "\n\n".join(paragraphs))
    return "\n\n".join(parts), questions


def build() -> dict:
    rng = random.Random(SEED)
    data = []
    for kind, entities, sections in KINDS:
        for entity in entities:
            text, questions = document(rng, kind, entity, sections)
            qas = []
            for i, (q, a) in enumerate(questions):
                start = text.find(a)
                assert start >= 0, (entity, a)
                qas.append({"id": f"{entity}-{i}", "question": q, "answers": [{"text": a, "answer_start": start}]})
            data.append({"title": f"{entity} {kind}", "paragraphs": [{"context": text, "qas": qas}]})
    return {"version": "korean-long-1", "data": data}


if __name__ == "__main__":
    built = build()
    OUT.write_text(json.dumps(built, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lengths = [len(a["paragraphs"][0]["context"]) for a in built["data"]]
    n = sum(len(a["paragraphs"][0]["qas"]) for a in built["data"])
    print(f"{OUT}: {len(lengths)} documents ({min(lengths)}-{max(lengths)} chars), {n} questions")
