package panel

// russian translates the panel's own words (the data stays as the API answers it).
var russian = map[string]string{
	"Account": "Счёт", "Calls": "Звонки", "SIP accounts": "SIP-аккаунты", "Numbers": "Номера", "Rates": "Тарифы",
	"Top up": "Пополнить", "Invoices": "Счета", "Tickets": "Обращения", "News": "Новости", "Users": "Пользователи",
	"Tariffs": "Тарифные планы", "Routes": "Маршруты", "Bill types": "Тарификация", "DID pools": "Пулы номеров",
	"Keys": "Ключи", "Bans": "Блокировки", "Live calls": "Текущие звонки", "Statistics": "Статистика",
	"Maintenance": "Обслуживание", "Log in": "Войти", "Log out": "Выйти", "Login": "Логин", "Password": "Пароль",
	"Balance": "Баланс", "Credit (overdraft)": "Кредит", "Currency": "Валюта", "SIP account": "SIP-аккаунт",
	"Tariff": "Тариф", "Language": "Язык", "Settings": "Настройки", "Save": "Сохранить",
	"Change password": "Сменить пароль", "New password": "Новый пароль", "From": "С", "To": "По", "Show": "Показать",
	"Download CSV": "Скачать CSV", "Date": "Дата", "Destination": "Номер", "Direction": "Направление",
	"Seconds": "Секунды", "Cost": "Стоимость", "Status": "Статус", "Server": "Сервер", "Caller ID": "Caller ID",
	"Call limit, s": "Лимит звонка, с", "Change": "Изменить", "New SIP account": "Новый SIP-аккаунт",
	"Create": "Создать", "Number (empty: the next free)": "Номер (пусто: следующий свободный)",
	"SIP server": "SIP-сервер", "Number": "Номер", "Expires": "Истекает", "Auto-renew": "Автопродление",
	"Renew": "Продлить", "Order a number": "Заказать номер", "Pool": "Пул", "Order": "Заказать", "Code": "Код",
	"Price a minute": "Цена за минуту", "Search": "Найти", "Tariff options": "Опции тарифа", "Option": "Опция",
	"Description": "Описание", "Turn on": "Включить", "Turn off": "Выключить", "Pay": "Оплата", "Method": "Способ",
	"Amount": "Сумма", "Create invoice": "Выставить счёт", "Prepaid code": "Код предоплаты",
	"Activate": "Активировать", "Invoice": "Счёт", "Ticket": "Обращение", "Subject": "Тема",
	"Updated": "Обновлено", "New ticket": "Новое обращение", "Message": "Сообщение", "Send": "Отправить",
	"Reply": "Ответить", "Close the ticket": "Закрыть обращение", "Nothing here yet.": "Пока пусто.",
	"Previous": "Назад", "Next": "Далее", "Done.": "Готово.", "Error": "Ошибка", "User": "Пользователь",
	"Level": "Уровень", "Manager": "Менеджер", "Lock": "Заблокировать", "Unlock": "Разблокировать",
	"Transfer money": "Перевод денег", "To user": "Пользователю", "Comment": "Комментарий",
	"Transfer": "Перевести", "New user": "Новый пользователь", "Username": "Имя пользователя",
	"Register": "Зарегистрировать", "Direction ": "Направление", "Rate deck upload": "Загрузка прайса",
	"Upload": "Загрузить", "Markup": "Наценка", "Apply": "Применить", "New tariff": "Новый тариф", "Name": "Название",
	"Bill type": "Тарификация", "Public": "Публичный", "Add": "Добавить", "Owner": "Владелец",
	"Last 14 days": "Последние 14 дней", "Calls by day": "Звонки по дням", "Minutes": "Минуты",
	"Top directions (minutes)": "Популярные направления (минуты)", "Unban": "Разблокировать",
	"Whitelist": "В белый список", "Whitelist an address": "Белый список", "Address": "Адрес", "Reason": "Причина",
	"Hang up": "Положить трубку", "Started": "Начало", "Reserved": "Зарезервировано", "Revoke": "Отозвать",
	"New Asterisk key": "Новый ключ Asterisk", "Realm": "Realm", "Secret": "Секрет", "Enabled": "Включён",
	"Periodic work": "Периодические задачи", "Last run": "Последний запуск", "Mail outbox": "Очередь почты",
	"User (empty: yourself)": "Пользователь (пусто: вы)", "Revenue by day": "Выручка по дням",
	"Bank transfers": "Банковские переводы", "To pay": "К оплате", "Credited when paid": "Будет зачислено", "Commission": "Комиссия", "VAT": "НДС",
	"Bank details": "Реквизиты", "Payment reference": "Назначение платежа", "Invoice (PDF)": "Счёт (PDF)",
	"Go to the payment page": "Перейти к оплате", "All invoices": "Все счета", "Valid until": "Действителен до",
	"Credit": "Зачислить", "Mark paid": "Оплачен", "Bank transaction": "Банковская операция",
	"Waiting for the money": "Ожидают оплаты", "Confirmed": "Подтверждены", "Confirmed by": "Подтвердил",
	"Wrong login or password.": "Неверный логин или пароль.", "This user is locked.": "Пользователь заблокирован.",
}

// translate gives the panel's words in the user's language (english when none is known).
func translate(lang, s string) string {
	if lang == "russian" {
		if t, ok := russian[s]; ok {
			return t
		}
	}
	return s
}
